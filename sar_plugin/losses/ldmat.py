"""Distance-matrix loss (LDMAT).

Ribeiro et al., the LDMAT loss, Computer Vision and Image Understanding
(CVIU), 2024.
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor, nn

from .base import AnchorLoss, pairwise_distance


def balanced_quota(counts: Tensor, budget: int) -> Tensor:
    """Class-balanced share of ``budget`` samples (water filling).

    Every present class gets ``floor`` or ``ceil`` of ``budget / n_present``;
    a class with fewer samples gives all of them and what it leaves is split
    again over the others. The ``+1`` of the ``ceil`` shares goes to the
    lowest class indices among the classes that are not exhausted.

    Args:
        counts (Tensor): ``K`` per-class counts (CPU, integer).
        budget (int): Samples to pick, at most ``counts.sum()``.

    Returns:
        Tensor: ``K`` per-class quotas summing to ``budget``.
    """
    quota = torch.zeros_like(counts)
    left = budget
    todo = [int(k) for k in torch.argsort(counts, stable=True)
            if counts[k] > 0]
    while todo:
        share = left // len(todo)
        if counts[todo[0]] > share:  # nobody is exhausted: split evenly
            extra = left - share * len(todo)
            for k in todo:
                quota[k] = share
            for k in sorted(todo)[:extra]:
                quota[k] += 1
            break
        k = todo.pop(0)
        quota[k] = counts[k]
        left -= int(counts[k])
    return quota


@MODELS.register_module()
class LDMATLoss(AnchorLoss):
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
    ``relax=0``). With ``r=0`` the same-class term is :math:`(D^f)^2`.
    On the unit sphere :math:`m = \sqrt 2` is the orthogonal choice: it
    asks different classes to be at least 90 degrees apart (feasible for
    K <= C + 1, e.g. on a regular simplex); the default ``m=1`` asks for 60
    degrees, a milder target that can be met by many more classes than
    dimensions.

    The loss is the mean over rows :math:`i` of :math:`\frac{1}{M-1}
    \sum_{j \ne i} \ell_{ij}` reduced by :meth:`AnchorLoss.reduce`, i.e. the
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
    Selecting the valid samples costs one host sync per call.

    Args:
        num_classes (int, optional): K.
        channels (int, optional): C.
        margin (float): m, the target distance of different classes.
        relax (float): r in [0, 1).
        hinge (bool): One-sided penalties (see above).
        normalize (bool): L2-normalise the features first.
        max_samples (int): Most samples in the distance matrix.
        sample_seed (int, optional): Seed of the sampling generator.
        loss_weight (float): Multiplies the loss.
        ignore_index (int): Ignored label.
        loss_name (str): Name of the term.
        **kwargs: ``class_weight``, ``reduction``, ``validate_labels`` of
            :class:`AnchorLoss`.
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
                 loss_weight: float = 1.0,
                 ignore_index: int = 255,
                 loss_name: str = 'loss_ldmat',
                 **kwargs) -> None:
        super().__init__(num_classes=num_classes, channels=channels,
                         loss_weight=loss_weight, ignore_index=ignore_index,
                         loss_name=loss_name, **kwargs)
        self.check_args(
            ('margin', margin, margin > 0, '> 0'),
            ('relax', relax, 0 <= relax < 1 and (hinge or relax == 0),
             'in [0, 1) (and 0 when hinge=False)'),
            ('max_samples', max_samples, int(max_samples) >= 2, 'an int >= 2'),
        )
        self.margin = float(margin)
        self.relax = float(relax)
        self.hinge = hinge
        self.normalize = normalize
        self.max_samples = int(max_samples)
        self.sample_seed = sample_seed
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
        """Indices of the (at most ``max_samples``) samples to use.

        Args:
            label (Tensor): ``M`` labels (ignored entries already 0).
            valid (Tensor): ``M`` valid mask.

        Returns:
            Tensor: Sorted indices into the flattened samples.
        """
        index = valid.nonzero().flatten()
        if index.numel() <= self.max_samples:
            return index
        lab = label[index]
        counts = torch.bincount(lab, minlength=self.num_classes)
        quota = balanced_quota(counts.cpu(), self.max_samples).to(lab.device)
        keys = torch.rand(index.numel(), generator=self._generator(
            index.device), device=index.device, dtype=torch.float64)
        order = torch.argsort(keys)
        order = order[torch.argsort(lab[order], stable=True)]  # class, key
        start = torch.cumsum(counts, 0) - counts
        rank = torch.arange(index.numel(), device=index.device) - \
            start[lab[order]]
        return index[order[rank < quota[lab[order]]]].sort().values

    def compute(self, flat: Tensor, label: Tensor, valid: Tensor,
                classifier: Optional[nn.Module] = None) -> Tensor:
        """Distance-matrix loss on a class-balanced sample of the valid
        rows (``classifier`` is not used)."""
        index = self.sample(label, valid)
        x, y = flat[index], label[index]
        if self.normalize:
            x = F.normalize(x, dim=1)
        dist = pairwise_distance(x, x, 'euclidean')
        same = y[:, None] == y[None, :]
        m = self.margin
        if self.hinge:
            pair = torch.where(same, F.relu(dist - self.relax * m),
                               F.relu(m - dist)).pow(2)
        else:
            pair = (dist - (~same).to(dist.dtype) * m).pow(2)
        off = ~torch.eye(len(index), dtype=torch.bool, device=x.device)
        rows = torch.where(off, pair, 0.0).sum(1) / max(len(index) - 1, 1)
        ones = torch.ones_like(y, dtype=torch.bool)
        return self.reduce(rows, y, ones)
