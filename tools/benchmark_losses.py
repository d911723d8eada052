"""Time and peak memory of the anchor losses, relative to ``F.mse_loss``.

Every loss gets the same per-pixel features ``N x C x H x W`` (default
``8 x 256 x 64 x 128``, K=19, ~5% ignored pixels) and is measured side by
side with a plain ``F.mse_loss(feat, target)`` over the same tensor in the
same process:

- time: best (minimum) wall time of ``repeats`` forward + backward passes
  after one warm-up pass (``time.perf_counter``, CPU, ``--threads`` torch
  threads), the cases run round-robin so that the load of a shared
  machine disturbs them alike;
- peak memory: one forward + backward under
  ``torch.profiler.profile(profile_memory=True)``. The profiler records
  every allocation and free of torch's CPU allocator with its size; the
  peak is the maximum of their running sum, i.e. the most tensor memory
  the pass held at once on top of what existed before it (the inputs, the
  target, the modules). It counts the feature gradient and every
  temporary, but not allocator caching, fragmentation or non-tensor
  memory. ``tracemalloc`` cannot see tensor memory and RSS deltas mix in
  the allocator's reuse of freed pages, so neither is used.

Then HAL against an in-batch pairwise NCA loss (every sample against every
other sample, the formulation HAL replaces) on the same ``--nca-samples``
randomly chosen valid pixels, plus HAL on all pixels (the main table).

Usage::

    python tools/benchmark_losses.py [--shape N C H W] [--classes K]
        [--repeats R] [--nca-samples M] [--threads T]
"""
import argparse
import os
import sys
import time
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sar_plugin.losses.ancm import ANCMLoss  # noqa: E402
from sar_plugin.losses.center import CenterLoss  # noqa: E402
from sar_plugin.losses.hal import HALLoss  # noqa: E402
from sar_plugin.losses.large_margin import LargeMarginLoss  # noqa: E402
from sar_plugin.losses.ldmat import LDMATLoss  # noqa: E402
from sar_plugin.losses.sar import SARLoss  # noqa: E402

MiB = 2**20


def total(out) -> Tensor:
    return sum(out.values()) if isinstance(out, dict) else out


def peak_bytes(step: Callable[[], None]) -> int:
    """Peak of torch's live CPU tensor memory during ``step`` (see top)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        step()
    events = [e for e in p.profiler.kineto_results.events()
              if e.name() == '[memory]' and 'CPU' in str(e.device_type())]
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return peak


Step = Tuple[Callable[[], None], Callable[[], None]]


def measure(steps: Dict[str, Step],
            repeats: int) -> Dict[str, Tuple[float, int]]:
    """``{name: (best seconds, peak bytes)}`` of ``(reset, run)`` pairs.

    One warm-up, then ``repeats`` rounds that run every case once in turn,
    so that load changes on a shared machine hit all cases alike; the best
    (minimum) time of each case is its least disturbed one.
    """
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for round_ in range(repeats + 1):
        for name, (reset, run) in steps.items():
            reset()
            start = time.perf_counter()
            run()
            if round_:
                times[name].append(time.perf_counter() - start)
    out = {}
    for name, (reset, run) in steps.items():
        reset()
        out[name] = (min(times[name]), peak_bytes(run))
    return out


def fwd_bwd(fn: Callable[[], Tensor], leaves: List[Tensor],
            modules: List[nn.Module]) -> Step:
    """``(reset, run)``: clear the gradients; forward + backward."""
    def reset() -> None:
        for x in leaves:
            x.grad = None
        for m in modules:
            m.zero_grad(set_to_none=True)

    def run() -> None:
        total(fn()).backward()
    return reset, run


def pairwise_nca(feat: Tensor, label: Tensor, temperature: float) -> Tensor:
    """In-batch NCA on the unit sphere: for every sample, -log of the
    softmax mass (over all other samples, logits -||f_i - f_j||^2 / tau) of
    the same-class samples; samples without a same-class partner skipped."""
    f = F.normalize(feat, dim=1)
    logits = (2 * f @ f.t() - 2) / temperature
    eye = torch.eye(len(f), dtype=torch.bool)
    logits = logits.masked_fill(eye, float('-inf'))
    log_p = logits.log_softmax(1)
    same = (label[:, None] == label[None]) & ~eye
    pos = torch.logsumexp(log_p.masked_fill(~same, float('-inf')), 1)
    has = same.any(1)
    return -(pos[has]).mean()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shape', type=int, nargs=4,
                        default=[8, 256, 64, 128],
                        metavar=('N', 'C', 'H', 'W'),
                        help='the feature map every loss gets (default: '
                        '8 256 64 128)')
    parser.add_argument('--classes', type=int, default=19,
                        help='number of classes K of the labels and '
                        'anchors (default: 19, Cityscapes)')
    parser.add_argument('--repeats', type=int, default=5,
                        help='timed forward + backward passes per case, '
                        'the best one is reported (default: 5)')
    parser.add_argument('--nca-samples', type=int, default=4096,
                        help='pixels of the batch-pairwise NCA comparison '
                        '(its cost is quadratic; default: 4096)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch intra-op threads (default: 1)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n, c, h, w = args.shape
    k = args.classes

    print('command: python ' + ' '.join(sys.argv))
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'features {n}x{c}x{h}x{w} float32, K={k}, repeats={args.repeats}, '
          'time = best forward+backward, memory = profiler peak')

    gen = torch.Generator().manual_seed(0)
    feat = torch.randn(n, c, h, w, generator=gen).requires_grad_(True)
    label = torch.randint(k, (n, h, w), generator=gen)
    label[torch.rand(n, h, w, generator=gen) < 0.05] = 255
    target = torch.randn(n, c, h, w, generator=gen)
    torch.manual_seed(0)
    conv = nn.Conv2d(c, k, 1)
    kw = dict(num_classes=k, channels=c)

    cases: Dict[str, Tuple[nn.Module, bool]] = {
        'ANCM euclidean': (ANCMLoss(**kw), False),
        'ANCM cosine': (ANCMLoss(distance='cosine', **kw), False),
        'HAL': (HALLoss(**kw), False),
        'LDMAT (1024 samples)': (LDMATLoss(sample_seed=0, **kw), False),
        'LargeMargin': (LargeMarginLoss(**kw), True),
        'Center learned': (CenterLoss(**kw), False),
        'Center ema': (CenterLoss(center_mode='ema', **kw), False),
        'SAR': (SARLoss(**kw), True),
    }
    steps = {'F.mse_loss (baseline)': fwd_bwd(
        lambda: F.mse_loss(feat, target), [feat], [])}
    for name, (loss, needs_clf) in cases.items():
        loss.train()
        steps[name] = fwd_bwd(
            lambda loss=loss, clf=conv if needs_clf else None: loss(
                feat, label, classifier=clf), [feat], [loss, conv])
    results = measure(steps, args.repeats)
    rows = [(name, *results[name]) for name in steps]
    base_t, base_m = rows[0][1:]

    print(f'\n{"loss":24s} {"time ms":>9s} {"x mse":>7s} '
          f'{"peak MiB":>9s} {"x mse":>7s}')
    for name, t, m in rows:
        print(f'{name:24s} {1e3 * t:9.1f} {t / base_t:7.2f} '
              f'{m / MiB:9.1f} {m / base_m:7.2f}')

    # HAL vs in-batch pairwise NCA on the same sampled pixels
    flat = feat.detach().permute(0, 2, 3, 1).reshape(-1, c)
    lab = label.reshape(-1)
    valid = (lab != 255).nonzero().flatten()
    m = min(args.nca_samples, len(valid))
    pick = valid[torch.randperm(len(valid), generator=gen)[:m]]
    sub = flat[pick].clone().requires_grad_(True)
    sub_lab = lab[pick]
    hal = HALLoss(**kw)
    res = measure({
        'HAL': fwd_bwd(lambda: hal(sub, sub_lab), [sub], []),
        'pairwise NCA': fwd_bwd(
            lambda: pairwise_nca(sub, sub_lab, hal.temperature), [sub], []),
    }, args.repeats)
    (ht, hm), (pt, pm) = res['HAL'], res['pairwise NCA']
    print(f'\nHAL vs in-batch pairwise NCA on the same M={m} pixels '
          f'(tau={hal.temperature}):')
    print(f'{"":24s} {"time ms":>9s} {"peak MiB":>9s}')
    for name, (t, mem) in res.items():
        print(f'{name:24s} {1e3 * t:9.2f} {mem / MiB:9.2f}')
    print(f'HAL / NCA: time {100 * ht / pt:.1f}%, memory {100 * hm / pm:.1f}%')
    hal_all = next(r for r in rows if r[0] == 'HAL')
    print(f'HAL on all {n * h * w} pixels: {1e3 * hal_all[1]:.1f} ms, '
          f'{hal_all[2] / MiB:.1f} MiB (pairwise NCA would need a '
          f'{n * h * w}^2 matrix, {4 * (n * h * w)**2 / 2**30:.1f} GiB)')


if __name__ == '__main__':
    main()
