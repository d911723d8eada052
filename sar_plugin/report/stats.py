"""Statistics over seeds: mean ± sample std, paired differences with t and
bootstrap intervals, and their table cells (used by the sweep report).

Every statistic carries its ``n``, the number of seeds with a finite value:

- :func:`describe`: mean and sample standard deviation (``ddof=1``; ``nan``
  for ``n < 2``).
- :func:`paired`: per-seed differences ``other - reference`` over the
  seeds both have, their mean, and a two-sided t interval
  ``mean +- t_{1-a/2, n-1} s / sqrt(n)`` (``nan``, i.e. undefined, for
  ``n < 2``), optionally a percentile bootstrap interval of the mean.
"""
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from .tables import fmt

SeedValues = Dict[int, float]

@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation over seeds.

    Attributes:
        seeds: The seeds with a finite value (sorted).
        values: Their values.
        mean: Mean (``nan`` when ``n == 0``).
        std: Sample standard deviation, ``ddof=1`` (``nan`` when ``n < 2``).
    """
    seeds: Tuple[int, ...]
    values: Tuple[float, ...]
    mean: float
    std: float

    @property
    def n(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Paired:
    """Paired comparison ``other - reference`` over common seeds.

    Attributes:
        seeds: Seeds where both have a finite value (sorted).
        diffs: The per-seed differences.
        mean: Mean difference (``nan`` when ``n == 0``).
        std: Sample standard deviation of the differences (``ddof=1``).
        confidence: Level of the intervals (e.g. 0.95).
        t_low, t_high: t interval of the mean (``nan`` when ``n < 2``).
        boot_low, boot_high: Percentile bootstrap interval (``nan`` when not
            asked for or ``n < 2``).
    """
    seeds: Tuple[int, ...]
    diffs: Tuple[float, ...]
    mean: float
    std: float
    confidence: float
    t_low: float
    t_high: float
    boot_low: float = float('nan')
    boot_high: float = float('nan')

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def better(self) -> int:
        """Seeds where ``other`` is above the reference."""
        return sum(d > 0 for d in self.diffs)


def _finite(values: Mapping[int, Optional[float]]) -> SeedValues:
    return OrderedDict((s, float(values[s])) for s in sorted(values)
                       if values[s] is not None and np.isfinite(values[s]))


def describe(values: Mapping[int, Optional[float]]) -> Stat:
    """Mean and sample std (``ddof=1``) of ``{seed: value}``; ``None`` and
    non-finite values are left out (and so not counted in ``n``)."""
    kept = _finite(values)
    x = np.array(list(kept.values()), np.float64)
    mean = float(x.mean()) if len(x) else float('nan')
    std = float(x.std(ddof=1)) if len(x) > 1 else float('nan')
    return Stat(tuple(kept), tuple(kept.values()), mean, std)


def t_interval(diffs: Sequence[float],
               confidence: float = 0.95) -> Tuple[float, float]:
    """Two-sided t interval of the mean of ``diffs`` (``df = n - 1``);
    ``(nan, nan)`` when ``n < 2``, where it is undefined."""
    x = np.asarray(diffs, np.float64)
    if len(x) < 2:
        return float('nan'), float('nan')
    try:
        from scipy import stats
    except ImportError as err:  # pragma: no cover - scipy is a dependency
        raise ImportError('the sweep statistics need scipy, part of the '
                          'optional "report" extra: pip install '
                          '"sar_plugin[report]"') from err
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) \
        / np.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def bootstrap_interval(diffs: Sequence[float], confidence: float = 0.95,
                       resamples: int = 10000,
                       seed: int = 0) -> Tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diffs`` (seeded, so
    reproducible); ``(nan, nan)`` when ``n < 2`` or ``resamples < 1``.
    With few seeds it is narrower than the t interval: prefer the latter."""
    x = np.asarray(diffs, np.float64)
    if len(x) < 2 or resamples < 1:
        return float('nan'), float('nan')
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (resamples, len(x)))].mean(1)
    low, high = np.quantile(means, [0.5 - confidence / 2,
                                    0.5 + confidence / 2])
    return float(low), float(high)


def paired(reference: Mapping[int, Optional[float]],
           other: Mapping[int, Optional[float]],
           confidence: float = 0.95, resamples: int = 0) -> Paired:
    """Per-seed differences ``other - reference`` over the seeds where both
    are finite, their mean, std, t interval and (``resamples > 0``)
    bootstrap interval."""
    ref, oth = _finite(reference), _finite(other)
    seeds = tuple(s for s in ref if s in oth)
    diffs = tuple(oth[s] - ref[s] for s in seeds)
    stat = describe(dict(zip(seeds, diffs)))
    return Paired(seeds, diffs, stat.mean, stat.std, confidence,
                  *t_interval(diffs, confidence),
                  *bootstrap_interval(diffs, confidence, resamples))


# ---------------------------------------------------------------- cells


def fmt_stat(stat: Stat, digits: int = 2) -> str:
    """``mean ± std (n)``; ``n/a`` for what is undefined."""
    if stat.n == 0:
        return 'n/a (0)'
    return f'{fmt(stat.mean, digits)} ± {fmt(stat.std, digits)} ({stat.n})'


def signed(value: float, digits: int) -> str:
    """``+1.23`` / ``-0.50``; ``n/a`` when not finite."""
    return f'{value:+.{digits}f}' if np.isfinite(value) else 'n/a'


def fmt_interval(low: float, high: float, n: int, digits: int = 2) -> str:
    """``[low, high]``, or why there is none."""
    if n < 2:
        return f'undefined (n={n})'
    if not (np.isfinite(low) and np.isfinite(high)):
        return 'n/a'
    return f'[{signed(low, digits)}, {signed(high, digits)}]'


def fmt_paired(p: Paired, digits: int = 2) -> str:
    """``mean [t interval] (n)`` in one cell."""
    if p.n == 0:
        return 'n/a (0)'
    if p.n == 1:
        return f'{signed(p.mean, digits)} (1)'
    return (f'{signed(p.mean, digits)} '
            f'{fmt_interval(p.t_low, p.t_high, p.n, digits)} ({p.n})')
