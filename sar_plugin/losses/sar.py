"""Semantic Anchor Regularization (SAR).

Ge et al., "Beyond Prototypes: Semantic Anchor Regularization for Better
Representation Learning", AAAI 2024, arXiv:2312.11872. Written anew from the
paper and the reference implementation (geyanqi/SAR,
``mmseg/models/segmentors/sar.py``, MMSeg 0.29).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..anchors import ANCHOR_KINDS
from .base import FeatureLoss, Step
from .checks import (check_bool, check_cfg, check_choice, check_number,
                     check_seed)
from .dist import all_ranks_true, all_reduce_mean
from .functional import classifier_logits, upcast, upcast_dtype
from .kernels import masked_rows, masked_sq_dist


#: MMSeg's ``norm_cfg`` types the projector takes: type -> (the name
#: mmcv's ``ConvModule`` gives its norm layer, a builder; the layers mmcv
#: builds). A ``SyncBN`` layer is applied as ``BN`` (:func:`apply_norm`):
#: every rank embeds the same anchors with the same weights, so the
#: statistics of the batch are the same on every rank anyway.
NORM_LAYERS = {
    'BN': ('bn', lambda c, **kw: nn.BatchNorm2d(c, **kw)),
    'SyncBN': ('bn', lambda c, **kw: nn.SyncBatchNorm(c, **kw)),
    'GN': ('gn', lambda c, num_groups, **kw: nn.GroupNorm(num_groups, c,
                                                          **kw)),
    'LN': ('ln', lambda c, **kw: nn.LayerNorm(c, **kw)),
}


def build_norm(cfg: dict, channels: int) -> Tuple[str, nn.Module]:
    """A norm layer from an MMSeg ``norm_cfg`` (``BN``, ``SyncBN``, ``GN``,
    ``LN``; ``requires_grad`` as mmcv reads it), with torch alone.

    Returns:
        Tuple[str, nn.Module]: mmcv's name for it (``'bn'``...) and the
        layer, with the parameters and buffers mmcv's would have.
    """
    cfg = {k: v for k, v in dict(cfg).items() if k != '_scope_'}
    kind = cfg.pop('type')
    requires_grad = cfg.pop('requires_grad', True)
    if kind not in NORM_LAYERS:
        raise KeyError(f'norm type {kind!r} is not one of '
                       f'{", ".join(NORM_LAYERS)}')
    name, make = NORM_LAYERS[kind]
    layer = make(channels, **cfg)
    for param in layer.parameters():
        param.requires_grad = requires_grad
    return name, layer


def apply_norm(layer: nn.Module, x: Tensor) -> Tensor:
    """Normalise the ``K x C`` embedded anchors.

    Batch norms always use the statistics of this batch (the K anchors)
    and never update their running statistics: the projector only runs on
    the fixed anchors, in training, so nothing would read them (they stay
    in the state dict, where checkpoints of the reference keep theirs).
    """
    if isinstance(layer, nn.modules.batchnorm._BatchNorm):
        return F.batch_norm(x, None, None, layer.weight, layer.bias, True,
                            0.0, layer.eps)
    if isinstance(layer, nn.GroupNorm):
        return layer(x[..., None, None]).flatten(1)
    return layer(x)


class _ConvNorm(nn.Module):
    """The 1x1 conv + norm of the reference's ``ConvModule``, with its
    state-dict names (``conv``, ``bn``/``gn``/``ln``), its initialisation
    (conv without bias, Kaiming normal, fan-out; norm weight 1, bias 0)
    and no mmcv."""

    def __init__(self, channels: int, norm_cfg: dict) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)
        nn.init.kaiming_normal_(self.conv.weight, mode='fan_out',
                                nonlinearity='relu')
        self.norm_name, norm = build_norm(norm_cfg, channels)
        self.add_module(self.norm_name, norm)

    def forward(self, x: Tensor) -> Tensor:
        x = F.linear(x, self.conv.weight.flatten(1))  # a 1x1 map: a product
        return F.relu(apply_norm(getattr(self, self.norm_name), x))


class AnchorProjector(nn.Module):
    """Embeds the K fixed anchors: Linear-norm-ReLU x2, then 1x1 conv-norm-
    ReLU (the reference's projector, same parameter names and numbers).

    Args:
        channels (int): C.
        norm_cfg (dict): An MMSeg norm config (see :func:`build_norm`).
    """

    def __init__(self, channels: int, norm_cfg: dict) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, channels)
        self.norm1 = build_norm(norm_cfg, channels)[1]
        self.fc2 = nn.Linear(channels, channels)
        self.norm2 = build_norm(norm_cfg, channels)[1]
        self.conv = _ConvNorm(channels, norm_cfg)

    def forward(self, anchors: Tensor) -> Tensor:
        x = F.relu(apply_norm(self.norm1, self.fc1(anchors)))
        x = F.relu(apply_norm(self.norm2, self.fc2(x)))
        return self.conv(x)


class SARLoss(FeatureLoss):
    r"""Semantic Anchor Regularization.

    Per training step, with K fixed anchors :math:`a_k` (buffer ``anchors``)
    and the classifier :math:`g` of the head:

    1. Embed: :math:`e = P(a)` by :class:`AnchorProjector` (trained).
    2. Classifier-aware anchor loss: :math:`p_i = \mathrm{softmax}(g(e_i))_i`,

       .. math::
           L_{anchor} = \sum_i w_i \cdot (-\log p_i),\quad
           w_i = \frac{\log \tilde p_i}{\sum_j \log \tilde p_j},\quad
           \tilde p_i = 1 \text{ if } p_i > \text{filter\_conf} \text{ else } p_i

       so confidently classified anchors get weight 0 and the least
       separable ones dominate. As in the reference, gradients also flow
       through :math:`w` (``detach_weights=True`` stops them).
    3. Gate: the step *passes* when every anchor is classified as its own
       class with :math:`p_i > \text{update\_conf}`. On a passing step the
       semantic anchors (buffer ``semantic_anchors``) are set (first time) or
       updated by EMA, :math:`s \leftarrow m s + (1 - m) e`, detached.
       ``gate='step'`` (reference): the pull is applied on passing steps only
       and ``gate_open`` is this step's decision. ``gate='latched'``: once a
       step has passed, the pull applies on every later step.
    4. Pull, while ``gate_open``: ``pull='mse'``:
       :math:`L_{pull} = \mathrm{mean}_{valid\ x, c}(f_{x,c} - s_{y_x,c})^2`
       (the reference's ``MSELoss`` normalised by pixels and channels) or
       ``pull='cosine'``: :math:`\mathrm{mean}_x (1 - \cos(f_x, s_{y_x}))`.

    Returned terms: ``{loss_name}_anchor = loss_weight * anchor_weight *
    L_anchor`` and ``{loss_name}_pull = loss_weight * pull_weight * L_pull``
    (a zero with a graph while the gate is closed or no pixel is valid).

    Differences from the reference, all deliberate:

    - the fixed anchors have their own seed, ``anchor_seed``, independent
      of the run's ``randomness.seed``: the reference draws them with
      ``torch.randn`` at construction, from the global RNG that every
      process seeds from the config's seed, so there a new seed also gives
      new anchors; here it varies the weights and the data but not the
      anchors. ``anchor_seed=None`` makes the anchors follow the run's
      seed (:func:`torch.initial_seed`, read without consuming the global
      RNG);
    - the gate decision is AND-ed and the embedded anchors averaged over
      ranks before the EMA, so ``semantic_anchors`` and ``gate_open`` stay
      identical under DDP (which does not broadcast buffers in MMEngine);
    - semantic anchors are gathered by label instead of multiplying a
      ``(B, K+1, H, W)`` one-hot map, with no ``.cuda()`` calls;
    - labels outside ``[0, K)`` that are not ``ignore_index`` raise instead of
      being silently mapped to the extra "ignore" channel;
    - ``momentum`` is configurable (0.999 hard-coded in the reference), the
      pull and the anchor CE are computed in float32 under autocast, and no
      Python branch depends on tensor values (no host sync but the one
      read of :class:`FeatureLoss`' label and finiteness checks);
    - the state is only updated in training mode, and only by a finite
      step (see :class:`~.base.FeatureLoss`);
    - the projector's batch norms normalise with the statistics of the K
      anchors and leave their running statistics alone (nothing reads
      them: the projector only embeds the anchors, in training); ``SyncBN``
      is ``BN`` there (every rank embeds the same anchors).

    Args:
        num_classes (int, optional): K; ``SARHead`` fills it in.
        channels (int, optional): C of the classifier input; ``SARHead``
            fills it in.
        anchor_init (str): ``'gaussian'`` (the paper's ``randn(K, C)``),
            ``'orthogonal'``, ``'simplex'``, ``'onehot'`` or
            ``'hypersphere'``; see :func:`sar_plugin.anchors.build_anchors`.
        anchor_seed (int, optional): Seed of the fixed anchors, independent
            of the run's ``randomness.seed``; ``None`` uses the run's seed
            (see :meth:`FeatureLoss.register_anchors`).
        anchor_scale (float): Scale of the fixed anchors.
        norm_cfg (dict): Norm of the projector (``dict(type='SyncBN')`` in
            multi-GPU configs, as in the reference).
        filter_conf (float): Anchors classified with more confidence get
            weight 0 in the anchor loss.
        update_conf (float): Confidence every anchor needs for the gate.
        momentum (float): EMA momentum ``m`` of the semantic anchors.
        anchor_weight (float): Weight of the anchor CE (``trade_off_ce``).
        pull_weight (float): Weight of the pull (``trade_off``, 0.1).
        pull (str): ``'mse'`` or ``'cosine'``.
        gate (str): ``'step'`` or ``'latched'``.
        detach_weights (bool): Stop gradients through the anchor weights.
        loss_weight (float): Multiplies both terms.
        ignore_index (int): Ignored label.
        loss_name (str): Prefix of the returned terms.
        **kwargs: ``class_weight``, ``validate_labels`` of
            :class:`FeatureLoss`.
    """

    def __init__(self,
                 num_classes: Optional[int] = None,
                 channels: Optional[int] = None,
                 anchor_init: str = 'gaussian',
                 anchor_seed: Optional[int] = 0,
                 anchor_scale: float = 1.0,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 filter_conf: float = 0.9,
                 update_conf: float = 0.8,
                 momentum: float = 0.999,
                 anchor_weight: float = 1.0,
                 pull_weight: float = 0.1,
                 pull: str = 'mse',
                 gate: str = 'step',
                 detach_weights: bool = False,
                 loss_weight: float = 1.0,
                 ignore_index: int = 255,
                 loss_name: str = 'loss_sar',
                 **kwargs) -> None:
        super().__init__(
            num_classes=num_classes,
            channels=channels,
            loss_weight=loss_weight,
            ignore_index=ignore_index,
            loss_name=loss_name,
            **kwargs)
        cls = type(self).__name__
        if 'loss' in self.loss_name[len('loss_'):]:
            raise ValueError(
                f'{cls}: `loss_name`={loss_name!r}: the part after '
                "'loss_' names the logged scalars (e.g. "
                f"'{self.loss_name[len('loss_'):]}_gate_open') and must not "
                "contain 'loss', or MMEngine would add them to the total loss")
        if self.num_classes < 2:
            raise ValueError(f'{cls}: `num_classes` must be >= 2, got '
                             f'{self.num_classes}')
        anchor_init = check_choice(cls, 'anchor_init', anchor_init,
                                   ANCHOR_KINDS)
        anchor_seed = check_seed(cls, 'anchor_seed', anchor_seed)
        anchor_scale = check_number(cls, 'anchor_scale', anchor_scale, '> 0')
        norm_cfg = check_cfg(
            cls, 'norm_cfg', norm_cfg,
            note=' (SARHead fills it from the head when omitted or None)')
        self.filter_conf = check_number(cls, 'filter_conf', filter_conf,
                                        '(0, 1]')
        self.update_conf = check_number(cls, 'update_conf', update_conf,
                                        '(0, 1)')
        self.momentum = check_number(cls, 'momentum', momentum, '[0, 1)')
        self.anchor_weight = check_number(cls, 'anchor_weight', anchor_weight,
                                          '>= 0')
        self.pull_weight = check_number(cls, 'pull_weight', pull_weight,
                                        '>= 0')
        self.pull = check_choice(cls, 'pull', pull, ('mse', 'cosine'))
        self.gate = check_choice(cls, 'gate', gate, ('step', 'latched'))
        self.detach_weights = check_bool(cls, 'detach_weights',
                                         detach_weights)

        self.register_anchors(anchor_init, anchor_seed, anchor_scale)
        try:
            self.projector = AnchorProjector(self.channels, norm_cfg)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f'{cls}: `norm_cfg`={norm_cfg!r} does not build '
                             f'a norm layer: {err}') from err
        self.register_buffer('semantic_anchors',
                             torch.zeros(self.num_classes, self.channels))
        self.register_buffer('gate_open', torch.tensor(False))
        self.register_buffer('num_updates', torch.tensor(0, dtype=torch.long))
        self._anchor_conf: Optional[Tensor] = None  # for log_vars()

    def anchor_loss(self, logits: Tensor) -> Tensor:
        """Confidence-weighted CE of the embedded anchors (``K x K`` logits)."""
        log_p = upcast(logits).log_softmax(dim=1).diagonal()
        kept = torch.where(log_p.exp() > self.filter_conf,
                           torch.zeros_like(log_p), log_p)
        weight = kept / kept.sum().clamp(max=-1e-12)
        if self.detach_weights:
            weight = weight.detach()
        return (weight * -log_p).sum()

    @torch.no_grad()
    def new_state(self, logits: Tensor, embedded: Tensor) -> dict:
        """The gate decision and the EMA of the semantic anchors that this
        step would write (rank-consistent: the decision AND-ed and the
        embedded anchors averaged over ranks).

        Args:
            logits (Tensor): ``K x K`` classifier outputs of the anchors.
            embedded (Tensor): ``K x C`` embedded anchors.
        """
        k = self.num_classes
        probs = upcast(logits).softmax(dim=1)
        target = torch.arange(k, device=logits.device)
        self._anchor_conf = probs.diagonal().min().detach()
        passed = all_ranks_true((probs.argmax(dim=1) == target).all() &
                                (probs.diagonal() > self.update_conf).all())
        new = all_reduce_mean(embedded.detach().to(self.semantic_anchors))
        old = self.semantic_anchors
        ema = torch.where(self.num_updates == 0, new,
                          self.momentum * old + (1 - self.momentum) * new)
        gate = passed if self.gate == 'step' else self.gate_open | passed
        return dict(semantic_anchors=torch.where(passed, ema, old),
                    gate_open=gate,
                    num_updates=self.num_updates + passed.long())

    def log_vars(self) -> dict:
        """``{stem}_gate_open`` (1 while the pull applies),
        ``{stem}_updates`` (EMA updates of the semantic anchors so far) and
        ``{stem}_anchor_conf`` (the lowest confidence with which an
        embedded anchor is classified as its own class, on this rank, in
        the last training call: the gate needs every one above
        ``update_conf``), ``stem`` being ``loss_name`` without ``loss_``."""
        stem = self.loss_name[len('loss_'):]
        out = {f'{stem}_gate_open': self.gate_open.float(),
               f'{stem}_updates': self.num_updates.float()}
        if self._anchor_conf is not None:
            out[f'{stem}_anchor_conf'] = self._anchor_conf
        return out

    def pull_loss(self, feat: Tensor, anchors: Tensor, label: Tensor,
                  valid: Tensor) -> Tuple[Tensor, Tensor]:
        """Pull of every valid feature to its class' semantic anchor.

        Returns:
            Tuple[Tensor, Tensor]: The pull (before the gate) and the
            ``M`` per-sample values, finite exactly when the valid
            features are (short of squares beyond the float type).
        """
        anchors = anchors.to(upcast_dtype(feat.dtype))
        if self.pull == 'mse':
            per_sample = masked_sq_dist(feat, anchors, label, valid) / \
                self.channels
        else:
            per_sample = 1 - F.cosine_similarity(masked_rows(feat, valid),
                                                 anchors[label], dim=1)
        return self.reduce(per_sample, label, valid), per_sample

    def compute(self, feat: Tensor, label: Tensor, valid: Tensor,
                classifier: Optional[nn.Module] = None) -> Step:
        """The SAR terms and, in training, the state this step would write.

        Args:
            classifier (nn.Module): The head's classifier (``conv_seg`` or
                a linear layer); SAR classifies its anchors with it.

        Returns:
            Step: ``{loss_name}_anchor`` and ``{loss_name}_pull``.
        """
        if classifier is None:
            raise ValueError(
                'SARLoss needs the head\'s classifier: call it as '
                'loss(feat, label, classifier=head.conv_seg) (SARHead and '
                'AnchorClsHead do this)')
        embedded = self.projector(self.anchors)
        logits = classifier_logits(classifier, embedded)
        if tuple(logits.shape) != (self.num_classes, self.num_classes):
            raise ValueError(
                f'SARLoss: the classifier maps {self.channels} channels to '
                f'{logits.shape[1]} classes, but num_classes='
                f'{self.num_classes}')
        state = self.new_state(logits, embedded) if self.training else dict(
            semantic_anchors=self.semantic_anchors, gate_open=self.gate_open)
        # to the semantic anchors as this step leaves them (the reference's
        # order: a passing step's own embedded anchors are in the target),
        # while the gate as this step leaves it is open
        pull, per_sample = self.pull_loss(feat, state['semantic_anchors'],
                                          label, valid)
        terms = {
            f'{self.loss_name}_anchor':
            self.anchor_weight * self.anchor_loss(logits),
            f'{self.loss_name}_pull':
            self.pull_weight * torch.where(state['gate_open'], pull, 0.0),
        }
        return Step(terms, state if self.training else {},
                    checked=[('embedded anchors', embedded),
                             ('classifier output', logits),
                             ('features', per_sample)])
