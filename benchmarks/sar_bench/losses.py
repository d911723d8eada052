"""Forward + backward cost of every anchor loss against two yardsticks.

- the *floor*: ``F.mse_loss(feat, target)`` over the same ``N x C x H x W``
  feature map, the cheapest loss that reads every feature and writes its
  gradient;
- for SAR, the *reference style*: the pull computed the way the reference
  implementation (geyanqi/SAR, MMSeg 0.29) does it, written here from its
  description: a one-hot ``N x (K+1) x H x W`` label map (ignored pixels in
  the extra channel) multiplied into an ``N x C x H x W`` target map of the
  semantic anchors, an unreduced squared-error map, masked and averaged.
  The reference gets only its pull timed; ``SARLoss`` is timed whole
  (projector, anchor classification, gate, EMA and pull).

Every case gets the same features, labels (~5% ignored) and classifier.
Losses with state run in training mode, so their updates are timed too.
"""
from typing import Callable, Dict, Iterable, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sar_plugin.losses.ancm import ANCMLoss
from sar_plugin.losses.center import CenterLoss
from sar_plugin.losses.hal import HALLoss
from sar_plugin.losses.large_margin import LargeMarginLoss
from sar_plugin.losses.ldmat import LDMATLoss
from sar_plugin.losses.sar import SARLoss

from .measure import Case, measure, paired_ratio

MiB = 2**20
FLOOR = 'F.mse_loss (floor)'
REFERENCE = 'SAR pull, reference style'


def reference_style_sar_pull(feat: Tensor, label: Tensor, anchors: Tensor,
                             ignore_index: int = 255) -> Tensor:
    """The SAR pull as the reference implementation computes it.

    Args:
        feat (Tensor): ``N x C x H x W`` features.
        label (Tensor): ``N x H x W`` labels in ``[0, K)`` or
            ``ignore_index``.
        anchors (Tensor): ``K x C`` semantic anchors.

    Returns:
        Tensor: ``sum_{valid x, c} (f - s_y)^2 / C / #valid``.
    """
    n, c, h, w = feat.shape
    k = anchors.shape[0]
    channel = torch.where(label < k, label, k)[:, None]  # ignored -> K
    onehot = feat.new_zeros(n, k + 1, h, w).scatter_(1, channel, 1)
    target = onehot[:, :k].permute(0, 2, 3, 1) @ anchors.to(feat.dtype)
    target = target.permute(0, 3, 1, 2)
    mask = (label != ignore_index)[:, None]
    squared = F.mse_loss(feat, target, reduction='none')
    return (squared * mask).sum() / c / mask.sum().clamp(min=1)


def pairwise_nca(feat: Tensor, label: Tensor, temperature: float) -> Tensor:
    """In-batch NCA on the unit sphere, the loss HAL replaces: for every
    sample, -log of the softmax mass (over all other samples, logits
    ``-||f_i - f_j||^2 / tau``) of its same-class samples; samples without
    a same-class partner are skipped."""
    f = F.normalize(feat, dim=1)
    logits = (2 * f @ f.t() - 2) / temperature
    eye = torch.eye(len(f), dtype=torch.bool, device=f.device)
    log_p = logits.masked_fill(eye, float('-inf')).log_softmax(1)
    same = (label[:, None] == label[None]) & ~eye
    pos = torch.logsumexp(log_p.masked_fill(~same, float('-inf')), 1)
    return -(pos[same.any(1)]).mean()


def _total(out) -> Tensor:
    return sum(out.values()) if isinstance(out, dict) else out


def backward_case(fn: Callable[[], Tensor], leaves: List[Tensor],
                  modules: Iterable[nn.Module], device: str) -> Case:
    """A :class:`Case` of ``fn().backward()``, gradients cleared first."""
    modules = list(modules)

    def reset() -> None:
        for x in leaves:
            x.grad = None
        for m in modules:
            m.zero_grad(set_to_none=True)

    return Case(run=lambda: _total(fn()).backward(), reset=reset,
                device=device)


def build_losses(k: int, c: int) -> Dict[str, nn.Module]:
    """Every anchor loss at its defaults, in training mode."""
    kw = dict(num_classes=k, channels=c)
    losses = {
        'ANCM euclidean': ANCMLoss(**kw),
        'ANCM cosine': ANCMLoss(distance='cosine', **kw),
        'HAL': HALLoss(**kw),
        'LDMAT (1024 samples)': LDMATLoss(sample_seed=0, **kw),
        'LargeMargin': LargeMarginLoss(**kw),
        'Center learned': CenterLoss(**kw),
        'Center ema': CenterLoss(center_mode='ema', **kw),
        'SAR': SARLoss(**kw),
    }
    for loss in losses.values():
        loss.train()
    return losses


def loss_table(shape: List[int], k: int, dtype: torch.dtype, device: str,
               rounds: int, seed: int = 0,
               progress: Optional[Callable[[str], None]] = None
               ) -> List[dict]:
    """Time and peak memory of every loss at one ``(K, dtype)``.

    Returns:
        list[dict]: One row per case: ``loss``, ``ms`` (median),
        ``best_ms``, ``x_floor`` (:func:`~.measure.paired_ratio` to the
        floor), ``peak_mib``, ``mem_x_floor``, ``times_ms`` (round
        order); the SAR row also
        ``x_reference`` (the reference style's time over SAR's: how many
        times faster SAR is) and ``mem_x_reference``.
    """
    n, c, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    feat = torch.randn(n, c, h, w, generator=gen)
    label = torch.randint(k, (n, h, w), generator=gen)
    label[torch.rand(n, h, w, generator=gen) < 0.05] = 255
    target = torch.randn(n, c, h, w, generator=gen)
    anchors = torch.randn(k, c, generator=gen)
    feat = feat.to(device, dtype).requires_grad_(True)
    label, target = label.to(device), target.to(device, dtype)
    anchors = anchors.to(device)
    torch.manual_seed(seed)
    conv = nn.Conv2d(c, k, 1).to(device)
    losses = {name: loss.to(device)
              for name, loss in build_losses(k, c).items()}
    # a realistic pull: semantic anchors set and the gate open
    sar = losses['SAR']
    sar.semantic_anchors.copy_(anchors)
    sar.gate_open.fill_(True)

    cases = {
        FLOOR: backward_case(lambda: F.mse_loss(feat, target), [feat], [],
                             device),
        REFERENCE: backward_case(
            lambda: reference_style_sar_pull(feat, label, anchors), [feat],
            [], device),
    }
    for name, loss in losses.items():
        cases[name] = backward_case(
            lambda loss=loss: loss(feat, label, classifier=conv), [feat],
            [loss, conv], device)
    results = measure(cases, rounds, progress=progress)
    floor, ref = results[FLOOR], results[REFERENCE]
    rows = []
    for name, r in results.items():
        row = dict(loss=name, ms=1e3 * r.median, best_ms=1e3 * r.best,
                   x_floor=paired_ratio(r, floor), peak_mib=r.peak / MiB,
                   mem_x_floor=r.peak / floor.peak,
                   times_ms=[1e3 * t for t in r.times])
        if name == 'SAR':
            row.update(x_reference=paired_ratio(ref, r),
                       mem_x_reference=ref.peak / r.peak)
        rows.append(row)
    return rows


def hal_vs_pairwise(shape: List[int], k: int, samples: int, rounds: int,
                    seed: int = 0) -> dict:
    """HAL against in-batch pairwise NCA on the same ``samples`` pixels."""
    n, c, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    flat = torch.randn(n * h * w, c, generator=gen)
    label = torch.randint(k, (n * h * w,), generator=gen)
    m = min(samples, len(flat))
    pick = torch.randperm(len(flat), generator=gen)[:m]
    sub = flat[pick].clone().requires_grad_(True)
    sub_label = label[pick]
    hal = HALLoss(num_classes=k, channels=c)
    res = measure({
        'HAL': backward_case(lambda: hal(sub, sub_label), [sub], [], 'cpu'),
        'pairwise NCA': backward_case(
            lambda: pairwise_nca(sub, sub_label, hal.temperature), [sub], [],
            'cpu'),
    }, rounds)
    hal_r, nca_r = res['HAL'], res['pairwise NCA']
    return dict(samples=m, hal_ms=1e3 * hal_r.median,
                nca_ms=1e3 * nca_r.median, hal_mib=hal_r.peak / MiB,
                nca_mib=nca_r.peak / MiB,
                time_ratio=hal_r.median / nca_r.median,
                memory_ratio=hal_r.peak / nca_r.peak)
