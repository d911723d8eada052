"""Distance-matrix loss (LDMAT).

Ribeiro et al., the LDMAT loss, Computer Vision and Image Understanding
(CVIU), 2024.
"""
from typing import Dict, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import FeatureLoss, Step
from .checks import check_bool, check_choice, check_number, check_seed
from .functional import pairwise_distance, upcast


def balanced_quota(counts: Tensor, budget: Union[int, Tensor]) -> Tensor:
    """Class-balanced share of ``budget`` samples (water filling).

    Every present class gets ``floor`` or ``ceil`` of ``budget / n_present``;
    a class with fewer samples gives all of them and what it leaves is split
    again over the others. The ``+1`` of the ``ceil`` shares goes to the
    lowest class indices among the classes that are not exhausted.

    Tensor operations only, no host sync: with the counts sorted in
    ascending order, the j-th smallest class is exhausted when it holds at
    most ``(budget - sum of the j smaller counts) // (K - j)`` samples and
    every smaller class is exhausted too (absent classes come first and are
    exhausted with nothing taken); the rest split what is left.

    Args:
        counts (Tensor): ``K`` per-class counts (integer, any device).
        budget (int | Tensor): Samples to pick, at most ``counts.sum()``.

    Returns:
        Tensor: ``K`` per-class quotas summing to ``budget``.
    """
    order = torch.argsort(counts, stable=True)
    sorted_counts = counts[order]
    before = torch.cumsum(sorted_counts, 0) - sorted_counts
    todo = torch.arange(len(counts), 0, -1, device=counts.device)
    share = torch.div(budget - before, todo, rounding_mode='floor')
    exhausted = torch.cumprod((sorted_counts <= share).long(), 0).bool()
    left = budget - torch.where(exhausted, sorted_counts, 0).sum()
    n_open = (~exhausted).sum()
    share = torch.div(left, n_open.clamp(min=1), rounding_mode='floor')
    extra = left - share * n_open
    is_open = torch.empty_like(exhausted)
    is_open[order] = ~exhausted
    quota = torch.empty_like(counts)
    quota[order] = torch.where(exhausted, sorted_counts, share)
    rank = torch.cumsum(is_open.long(), 0) - 1  # among the open classes
    return quota + (is_open & (rank < extra)).to(quota.dtype)


class LDMATLoss(FeatureLoss):
    r"""Regress the feature distance matrix to the label distance matrix.

    For the M (sampled) valid samples, :math:`D^f_{ij} = \|\hat f_i -
    \hat f_j\|` (:math:`\hat f = f/\|f\|` when ``normalize``) and
    :math:`D^y_{ij} = 0` if :math:`y_i = y_j` else ``margin`` (m):

    .. math::
        L = \frac{1}{M(M-1)} \sum_{i \ne j} \ell_{ij}, \quad
        \ell_{ij} = \begin{cases}
            \mathrm{relu}(D^f_{ij} - r\,m)^2 & y_i = y_j \\
            \mathrm{relu}(m - D^f_{ij})^2 & y_i \ne y_j
        \end{cases}

    with the relaxation ``relax`` :math:`r \in [0, 1)` (``hinge=True``,
    default). ``hinge=False`` is the plain :math:`(D^f - D^y)^2`, which also
    pulls different-class pairs farther than ``m`` back to ``m`` (needs
    ``relax=0``). With ``r=0`` the same-class term is :math:`(D^f)^2`. The
    one-sided (hinge) form, its relaxation and making it the default are
    this project's choices, not the paper's.
    On the unit sphere :math:`m = \sqrt 2` is the orthogonal choice: it
    asks different classes to be at least 90 degrees apart (feasible for
    K <= C + 1, e.g. on a regular simplex); the default ``m=1`` asks for 60
    degrees, a milder target that can be met by many more classes than
    dimensions.

    Width: with ``normalize`` the distances live on the unit sphere and
    do not grow with C. Without it, ``channel_reduction='mean'`` (the
    default) divides them by :math:`\sqrt C` (per-channel RMS units, so
    ``margin`` means the same at C = 64 and C = 512); ``'sum'`` keeps the
    plain euclidean distance.

    The loss is the mean over rows :math:`i` of :math:`\frac{1}{M-1}
    \sum_{j \ne i} \ell_{ij}` reduced by :meth:`FeatureLoss.reduce`, i.e. the
    pair mean above, weighted by row when ``class_weight`` is given.

    Sampling (where the paper is open, it uses image batches): the ``M x M``
    matrix is built on at most ``max_samples`` valid samples per call, so
    memory is bounded by ``max_samples**2`` whatever the image size. With
    more valid samples, each present class gets a fair share (see
    :func:`balanced_quota`) drawn without replacement by a random key per
    sample from a private ``torch.Generator`` seeded with ``sample_seed``
    (continuing across calls; the global RNG when ``sample_seed`` is
    None). Class balance keeps small classes in the matrix, which is where
    a segmentation batch's pair statistics are otherwise dominated by
    background. With at most ``max_samples`` valid samples all are used.

    No host sync: the matrix always has ``min(M_all, max_samples)`` rows
    (``M_all`` positions, valid or not), the rows beyond the chosen samples
    being masked out (see :meth:`sample`). Every call draws one key per
    position, valid or not, so the generator moves on by the same amount
    whatever the labels; the j-th valid sample takes the j-th key.

    Args:
        num_classes (int, optional): K.
        channels (int, optional): C.
        margin (float): m, the target distance of different classes.
        relax (float): r in [0, 1).
        hinge (bool): One-sided penalties (see above).
        normalize (bool): L2-normalise the features first.
        max_samples (int): Most samples in the distance matrix.
        channel_reduction (str): ``'mean'`` or ``'sum'`` (see Width; no
            effect with ``normalize``).
        sample_seed (int, optional): Seed of the sampling generator.
        loss_weight (float): Multiplies the loss. The default, 0.1,
            was chosen on the demo's validation split (docs/losses.md,
            "Choosing a weight").
        ignore_index (int): Ignored label.
        loss_name (str): Name of the term.
        **kwargs: ``class_weight``, ``reduction``, ``validate_labels`` of
            :class:`FeatureLoss`.
    """

    def __init__(self,
                 num_classes: Optional[int] = None,
                 channels: Optional[int] = None,
                 margin: float = 1.0,
                 relax: float = 0.0,
                 hinge: bool = True,
                 normalize: bool = True,
                 max_samples: int = 1024,
                 sample_seed: Optional[int] = None,
                 channel_reduction: str = 'mean',
                 loss_weight: float = 0.1,
                 ignore_index: int = 255,
                 loss_name: str = 'loss_ldmat',
                 **kwargs) -> None:
        super().__init__(num_classes=num_classes, channels=channels,
                         loss_weight=loss_weight, ignore_index=ignore_index,
                         loss_name=loss_name, **kwargs)
        cls = type(self).__name__
        self.margin = check_number(cls, 'margin', margin, '> 0')
        self.hinge = check_bool(cls, 'hinge', hinge)
        self.relax = check_number(cls, 'relax', relax, '[0, 1)')
        if not self.hinge and self.relax != 0:
            raise ValueError(f'{cls}: `relax` must be in [0, 1) (and 0 when '
                             f'hinge=False), got {relax!r}')
        self.normalize = check_bool(cls, 'normalize', normalize)
        self.max_samples = check_number(cls, 'max_samples', max_samples,
                                        '>= 2', integer=True)
        self.sample_seed = check_seed(cls, 'sample_seed', sample_seed)
        self.channel_reduction = check_choice(
            cls, 'channel_reduction', channel_reduction, ('mean', 'sum'))
        self._generators: Dict[torch.device, torch.Generator] = {}

    def _generator(self, device: torch.device) -> Optional[torch.Generator]:
        if self.sample_seed is None:
            return None
        if device not in self._generators:
            gen = torch.Generator(device=device)
            gen.manual_seed(int(self.sample_seed))
            self._generators[device] = gen
        return self._generators[device]

    def sample(self, label: Tensor, valid: Tensor) -> Tensor:
        """Indices of the samples to use, without a host sync.

        Args:
            label (Tensor): ``M`` labels (ignored entries already 0).
            valid (Tensor): ``M`` valid mask.

        Returns:
            Tensor: ``min(M, max_samples)`` distinct indices into the
            flattened samples: the chosen valid ones in ascending order,
            then, when fewer are chosen (only when every valid sample is),
            invalid positions as padding; ``valid[index]`` marks the
            chosen ones.
        """
        m, k = label.numel(), self.num_classes
        device = label.device
        group = torch.where(valid, label, k)  # invalid samples: group k
        counts = torch.zeros(k + 1, dtype=torch.long, device=device)
        counts.index_add_(0, group, torch.ones_like(group))
        budget = counts[:k].sum().clamp(max=self.max_samples)
        quota = torch.cat([balanced_quota(counts[:k], budget),
                           counts.new_zeros(1)])  # no invalid one is chosen
        # the j-th valid sample gets the j-th key, as when only the valid
        # samples drew keys
        keys = torch.rand(m, generator=self._generator(device),
                          device=device, dtype=torch.float64)
        keys = keys[(torch.cumsum(valid, 0) - 1).clamp(min=0)]
        order = torch.argsort(keys, stable=True)
        order = order[torch.argsort(group[order], stable=True)]  # group, key
        start = torch.cumsum(counts, 0) - counts
        rank = torch.arange(m, device=device) - start[group[order]]
        chosen = torch.zeros_like(valid)
        chosen[order] = rank < quota[group[order]]
        # slot j: the j-th chosen sample, else the (j - n_chosen)-th other
        slot = torch.arange(1, min(m, self.max_samples) + 1, device=device)
        n_chosen = chosen.sum()
        first = torch.searchsorted(torch.cumsum(chosen, 0), slot)
        rest = torch.searchsorted(torch.cumsum(~chosen, 0), slot - n_chosen)
        return torch.where(slot <= n_chosen, first, rest)

    def compute(self, feat: Tensor, label: Tensor, valid: Tensor,
                classifier: Optional[nn.Module] = None) -> Step:
        """Distance-matrix loss on a class-balanced sample of the valid
        pixels (``classifier`` is not used); only the sampled pixels are
        gathered, and they are what the finiteness check covers."""
        index = self.sample(label, valid)
        keep = valid[index]  # padding rows, masked out
        n, c, h, w = feat.shape
        if feat.is_contiguous(memory_format=torch.channels_last):
            # rows are a view here; the gradient keeps the layout
            x = feat.permute(0, 2, 3, 1).reshape(-1, c)[index]
        else:
            x = feat.flatten(2)[index // (h * w), :, index % (h * w)]
        x = torch.where(keep[:, None], upcast(x), 0.0)
        y = label[index]
        if self.normalize:
            x = F.normalize(x, dim=1)
        dist = pairwise_distance(x, x, 'euclidean')
        if not self.normalize and self.channel_reduction == 'mean':
            dist = dist / c**0.5
        same = y[:, None] == y[None, :]
        m = self.margin
        if self.hinge:
            pair = torch.where(same, F.relu(dist - self.relax * m),
                               F.relu(m - dist)).pow(2)
        else:
            pair = (dist - (~same).to(dist.dtype) * m).pow(2)
        off = ~torch.eye(len(index), dtype=torch.bool, device=x.device) & \
            keep[:, None] & keep[None, :]
        rows = torch.where(off, pair, 0.0).sum(1) / \
            (keep.sum() - 1).clamp(min=1)
        return Step(self.reduce(rows, y, keep), checked=[('features', x)])
