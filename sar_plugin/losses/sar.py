"""Semantic Anchor Regularization (SAR).

Ge et al., "Beyond Prototypes: Semantic Anchor Regularization for Better
Representation Learning", AAAI 2024, arXiv:2312.11872. Written anew from the
paper and the reference implementation (geyanqi/SAR,
``mmseg/models/segmentors/sar.py``, MMSeg 0.29).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..anchors import ANCHOR_KINDS
from ..utils.dist import all_ranks_true, all_reduce_mean
from .base import (FeatureLoss, check_bool, check_cfg, check_choice,
                   check_number, check_seed)
from .functional import (classifier_logits, is_plain_pointwise, upcast,
                         upcast_dtype)
from .kernels import class_sq_dist, masked_rows


class AnchorProjector(nn.Module):
    """Embeds the K fixed anchors: Linear-norm-ReLU x2, then 1x1 ConvModule.

    The anchors are one batch of K samples. Norm layers are applied to a
    ``K x C x 1 x 1`` view, so the 2-D norm types MMSeg configs use (``BN``,
    ``SyncBN``, ``GN``) all work and ``SyncBN`` matches the reference.
    """

    def __init__(self, channels: int, norm_cfg: dict) -> None:
        super().__init__()
        # configs inheriting `mmseg::` bases carry MMEngine's `_scope_` key
        # in their dicts, which mmcv's build_norm_layer would pass on to the
        # norm layer's constructor
        norm_cfg = {k: v for k, v in dict(norm_cfg).items() if k != '_scope_'}
        self.fc1 = nn.Linear(channels, channels)
        self.norm1 = build_norm_layer(norm_cfg, channels)[1]
        self.fc2 = nn.Linear(channels, channels)
        self.norm2 = build_norm_layer(norm_cfg, channels)[1]
        self.conv = ConvModule(
            channels,
            channels,
            kernel_size=1,
            norm_cfg=norm_cfg,
            act_cfg=dict(type='ReLU'))

    def forward(self, anchors: Tensor) -> Tensor:
        x = F.relu(self.norm1(self.fc1(anchors)[..., None, None]))
        x = F.relu(self.norm2(self.fc2(x.flatten(1))[..., None, None]))
        conv = self.conv
        if conv.order == ('conv', 'norm', 'act') and conv.with_norm and \
                conv.with_activation and not conv.with_explicit_padding and \
                is_plain_pointwise(conv.conv) and not conv._forward_hooks \
                and not conv._forward_pre_hooks:
            # ConvModule's own steps with the 1x1 convolution of a 1x1 map
            # done as the product it is (cheaper on the CPU, same values)
            x = F.linear(x.flatten(1), conv.conv.weight.flatten(1),
                         conv.conv.bias)
            return conv.activate(conv.norm(x[..., None, None])).flatten(1)
        return conv(x).flatten(1)


@MODELS.register_module()
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
    - the state is only updated in training mode.

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

    dense_input = True  # the MSE pull works in N x C x H x W

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
        except (KeyError, TypeError, ValueError, AssertionError) as err:
            raise ValueError(f'{cls}: `norm_cfg`={norm_cfg!r} does not build '
                             f'a norm layer: {err}') from err
        self.register_buffer('semantic_anchors',
                             torch.zeros(self.num_classes, self.channels))
        self.register_buffer('gate_open', torch.tensor(False))
        self.register_buffer('num_updates', torch.tensor(0, dtype=torch.long))

    def anchor_loss(self, logits: Tensor) -> Tensor:
        """Confidence-weighted CE of the embedded anchors (``K x K`` logits)."""
        log_p = upcast(logits).log_softmax(dim=1).diagonal()
        kept = torch.where(log_p.exp() > self.filter_conf,
                           torch.zeros_like(log_p), log_p)
        weight = kept / kept.sum().clamp(max=-1e-12)
        if self.detach_weights:
            weight = weight.detach()
        return (weight * -log_p).sum()

    @property
    def state_names(self) -> list:
        return ['semantic_anchors', 'gate_open', 'num_updates',
                'projector norm statistics']

    @torch.no_grad()
    def update_state(self, logits: Tensor, embedded: Tensor,
                     ok: Tensor) -> Tensor:
        """Gate decision and EMA of the semantic anchors (rank-consistent).

        Args:
            logits (Tensor): ``K x K`` classifier outputs of the anchors.
            embedded (Tensor): ``K x C`` embedded anchors.
            ok (Tensor): Scalar bool; False (a bad label or a non-finite
                input on this rank) leaves the gate, the semantic anchors
                and the update count as they are, on every rank.

        Returns:
            Tensor: ``ok`` AND-ed over the ranks.
        """
        k = self.num_classes
        probs = upcast(logits).softmax(dim=1)
        target = torch.arange(k, device=logits.device)
        passed = (probs.argmax(dim=1) == target).all() & \
            (probs.diagonal() > self.update_conf).all()
        # one collective for both: [gate passed, nobody vetoed]
        passed, ok = all_ranks_true(torch.stack([passed & ok, ok])).unbind()
        new = all_reduce_mean(embedded.detach().to(self.semantic_anchors))
        old = self.semantic_anchors
        ema = torch.where(self.num_updates == 0, new,
                          self.momentum * old + (1 - self.momentum) * new)
        self.semantic_anchors.copy_(torch.where(passed, ema, old))
        self.num_updates.add_(passed.long())
        if self.gate == 'step':  # a vetoed step leaves the gate as it was
            self.gate_open.copy_(torch.where(ok, passed, self.gate_open))
        else:
            self.gate_open.logical_or_(passed)
        return ok

    def pull_loss(self, feat: Tensor, label: Tensor,
                  valid: Tensor) -> Tuple[Tensor, Tensor]:
        """Pull of every valid feature to its class' semantic anchor.

        Args:
            feat (Tensor): ``N x C x H x W`` (unmasked, see
                :attr:`FeatureLoss.dense_input`) or masked ``N x C`` rows.

        Returns:
            Tuple[Tensor, Tensor]: The pull (before the gate) and the
            per-sample values, all finite exactly when the valid features
            are (short of squares above float32's range).
        """
        anchors = self.semantic_anchors.to(upcast_dtype(feat.dtype))
        if self.pull == 'mse':
            per_sample = class_sq_dist(feat, anchors, label, valid) / \
                self.channels
        else:
            flat = masked_rows(feat, valid) if feat.dim() == 4 else feat
            per_sample = 1 - F.cosine_similarity(flat, anchors[label], dim=1)
        return self.reduce(per_sample, label, valid), per_sample

    def compute(self, flat: Tensor, label: Tensor, valid: Tensor,
                classifier: Optional[nn.Module] = None) -> dict:
        """Compute the SAR terms.

        Args:
            flat (Tensor): ``N x C x H x W`` features as they came
                (:attr:`dense_input`) or masked ``N x C`` image features
                (the classifier's input).
            label (Tensor): ``M`` labels (invalid entries 0).
            valid (Tensor): ``M`` valid mask.
            classifier (nn.Module): The head's classifier (``conv_seg`` or a
                linear layer); SAR classifies its anchors with it.

        Returns:
            dict: ``{loss_name}_anchor`` and ``{loss_name}_pull``.
        """
        if classifier is None:
            raise ValueError(
                'SARLoss needs the head\'s classifier: call it as '
                'loss(feat, label, classifier=head.conv_seg) (SARHead and '
                'AnchorClsHead do this)')
        # state a vetoed step must leave as it was: the projector's norm
        # statistics and the semantic anchors, gate and count, since the
        # finiteness of the pull (of per-pixel features, and any overflow
        # of finite but huge ones) is only known after the update
        dense = flat.dim() == 4
        state = list(self.projector.buffers()) + [
            self.semantic_anchors, self.gate_open, self.num_updates]
        saved = [b.clone() for b in state] if self.training else []
        embedded = self.projector(self.anchors)
        logits = classifier_logits(classifier, embedded)
        if tuple(logits.shape) != (self.num_classes, self.num_classes):
            raise ValueError(
                f'SARLoss: the classifier maps {self.channels} channels to '
                f'{logits.shape[1]} classes, but num_classes='
                f'{self.num_classes}')
        loss_anchor = self.anchor_loss(logits)
        if self.training:
            ok = self.update_state(
                logits, embedded,
                self.state_ok(('embedded anchors', embedded),
                              ('classifier output', logits)))
        # to the semantic anchors as this step left them (the reference's
        # order: a passing step's own embedded anchors are in the target)
        pull, per_sample = self.pull_loss(flat, label, valid)
        if self.training:
            ok = ok & all_ranks_true(self.state_ok(
                ('features' if dense else 'pull', per_sample)))
            # through `.data`: batch_norm saved the running statistics for
            # its backward (which, in training mode, does not read them)
            with torch.no_grad():
                for buf, old in zip(state, saved):
                    buf.data.copy_(torch.where(ok, buf, old))
        # the gate as this step left it
        loss_pull = torch.where(self.gate_open, pull, torch.zeros_like(pull))
        name = self.loss_name
        return {
            f'{name}_anchor':
            self.loss_weight * self.anchor_weight * loss_anchor,
            f'{name}_pull': self.loss_weight * self.pull_weight * loss_pull,
        }
