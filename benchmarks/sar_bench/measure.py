"""Time and peak memory of a step, measured side by side with others.

Every benchmark here compares *cases* run in one process, interleaved: a
round runs every case once, in turn (each round starting with the next
case), so that a change of load on a shared machine disturbs all of them
alike; the first ``warmup`` rounds are dropped.
Ratios to a baseline case are the numbers to read (absolute times depend on
the machine): the median over the rounds of the ratio within each round
(:func:`paired_ratio`).

Peak memory:

- CUDA: :func:`torch.cuda.max_memory_allocated` over one step, minus what
  was allocated before it;
- CPU: one step under ``torch.profiler.profile(profile_memory=True)``. The
  profiler records every allocation and free of torch's CPU allocator; the
  peak is the maximum of their running sum, i.e. the most tensor memory the
  step held at once on top of what existed before it. It counts gradients
  and every temporary, not allocator caching or non-tensor memory.
"""
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch
from torch.profiler import ProfilerActivity, profile


@dataclass
class Case:
    """One thing to measure: ``reset()`` (untimed), then ``run()`` (timed).

    ``device`` is where ``run`` works (``'cpu'`` or ``'cuda'``); CUDA steps
    are synchronised before the clock is read.
    """
    run: Callable[[], None]
    reset: Callable[[], None] = lambda: None
    device: str = 'cpu'


@dataclass
class Result:
    """Seconds of every timed run (warm-up dropped) and the peak bytes."""
    times: List[float] = field(default_factory=list)
    peak: Optional[int] = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)


def paired_ratio(case: Result, base: Result) -> float:
    """Median over the rounds of ``case``'s time over ``base``'s in the
    same round: slow drifts of the machine's load cancel in each pair."""
    return statistics.median(a / b for a, b in zip(case.times, base.times))


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def peak_bytes(case: Case) -> int:
    """Peak tensor memory of one ``case.run()`` above what existed before
    it (see the module docstring)."""
    case.reset()
    if case.device.startswith('cuda'):
        _sync(case.device)
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        case.run()
        _sync(case.device)
        return torch.cuda.max_memory_allocated() - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        case.run()
    events = [e for e in p.profiler.kineto_results.events()
              if e.name() == '[memory]' and 'CPU' in str(e.device_type())]
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def measure(cases: Dict[str, Case],
            rounds: int,
            warmup: int = 1,
            memory: bool = True,
            progress: Optional[Callable[[str], None]] = None
            ) -> Dict[str, Result]:
    """Run ``warmup + rounds`` interleaved rounds of every case.

    Args:
        cases (dict): ``{name: Case}``, run once per round, round ``r``
            starting with the ``r``-th case (modulo their number).
        rounds (int): Timed rounds (>= 1).
        warmup (int): Untimed rounds first (allocator, caches, lazy init,
            optimizer state).
        memory (bool): Also measure each case's peak memory (one more run
            each, after the timed rounds).
        progress (callable, optional): Called with a one-line status after
            every round.

    Returns:
        dict: ``{name: Result}``.
    """
    if rounds < 1 or warmup < 0:
        raise ValueError(f'rounds must be >= 1 and warmup >= 0, got '
                         f'{rounds} and {warmup}')
    results = {name: Result() for name in cases}
    total = warmup + rounds
    names = list(cases)
    for round_ in range(total):
        # each round starts with another case: no case always runs first
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            case = cases[name]
            case.reset()
            _sync(case.device)
            start = time.perf_counter()
            case.run()
            _sync(case.device)
            if round_ >= warmup:
                results[name].times.append(time.perf_counter() - start)
        if progress is not None:
            kind = 'warm-up' if round_ < warmup else 'timed'
            progress(f'round {round_ + 1}/{total} ({kind})')
    if memory:
        for name, case in cases.items():
            results[name].peak = peak_bytes(case)
    return results
