"""The colours of the report's figures: one qualitative palette of
well-separated colours, and one function mapping a class (or a run) index to
its colour, used by every plot, so a class keeps its colour across all
figures of a report.

The palette starts with matplotlib's ``tab10`` (the runs of a report or a
sweep keep the colours they always had), then continues Glasbey-style: each
next colour is the candidate farthest (CIE76 distance in CIELAB) from every
colour already chosen, taken from Kelly's 22 colours of maximum contrast
(without white) while one of them is far enough (:data:`KELLY_FIRST`), then
also from a grid of sRGB colours neither too dark nor too light to see on a
white background. It never uses light/dark pairs of one hue as
``tab20`` does (whose pairs made Sky/Building and Pole/Road of CamVid look
alike): every colour differs from every earlier one by at least the distance
:func:`min_distance` reports.
"""
from functools import lru_cache
from typing import List, Sequence, Tuple

import numpy as np

RGB = Tuple[float, float, float]

#: matplotlib's ``tab10``, the first ten colours
TAB10 = ('#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b',
         '#e377c2', '#7f7f7f', '#bcbd22', '#17becf')
#: Kelly's colours of maximum contrast, without white
KELLY = ('#222222', '#f3c300', '#875692', '#f38400', '#a1caf1', '#be0032',
         '#c2b280', '#848482', '#008856', '#e68fac', '#0067a5', '#f99379',
         '#604e97', '#f6a600', '#b3446c', '#dcd300', '#882d17', '#8db600',
         '#654522', '#e25822', '#2b3d26')


def _rgb(hex_colour: str) -> RGB:
    h = hex_colour.lstrip('#')
    return tuple(int(h[i:i + 2], 16) / 255 for i in (0, 2, 4))


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in ``[0, 1]`` (``... x 3``) to CIELAB (D65)."""
    rgb = np.asarray(rgb, np.float64)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055)**2.4)
    xyz = lin @ np.array([[0.4124564, 0.2126729, 0.0193339],
                          [0.3575761, 0.7151522, 0.1191920],
                          [0.1804375, 0.0721750, 0.9503041]])
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    eps = 216 / 24389
    f = np.where(xyz > eps, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], -1)


def _candidates() -> np.ndarray:
    levels = np.linspace(0, 1, 9)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing='ij'),
                    -1).reshape(-1, 3)
    light = to_lab(grid)[:, 0]
    grid = grid[(light >= 25) & (light <= 85)]
    return np.concatenate([np.array([_rgb(c) for c in KELLY]), grid])


#: how many distinct colours :func:`palette` gives before repeating
SIZE = 256


#: Kelly's colours come first while one is at least this far (CIELAB)
#: from every colour chosen; then the grid joins the candidates
KELLY_FIRST = 25.0


@lru_cache(maxsize=None)
def _full() -> Tuple[RGB, ...]:
    chosen = [_rgb(c) for c in TAB10]
    pool = _candidates()
    pool_lab = to_lab(pool)
    kelly = np.arange(len(pool)) < len(KELLY)
    dist = np.full(len(pool), np.inf)
    for colour in chosen:
        dist = np.minimum(
            dist, np.linalg.norm(pool_lab - to_lab(colour), axis=1))
    while len(chosen) < SIZE and dist.max() > 0:
        # the first of the farthest (deterministic): of Kelly's colours
        # while one is far enough, then of all candidates
        if kelly.any() and dist[kelly].max() >= KELLY_FIRST:
            j = int(np.argmax(np.where(kelly, dist, -1)))
        else:
            j = int(np.argmax(dist))
        chosen.append(tuple(float(v) for v in pool[j]))
        dist = np.minimum(dist,
                          np.linalg.norm(pool_lab - pool_lab[j], axis=1))
    return tuple(chosen)


def palette(n: int) -> List[RGB]:
    """``n`` well-separated colours (RGB in ``[0, 1]``): the first ``k`` of
    ``palette(n)`` are ``palette(k)``, so an index has one colour whatever
    ``n``. Past :data:`SIZE` colours the list repeats."""
    full = _full()
    return [full[i % len(full)] for i in range(max(n, 0))]


def colour_of(index: int) -> RGB:
    """The colour of class (or run) ``index``: the same in every figure of
    a report (every plot takes its colours from here)."""
    full = _full()
    return full[index % len(full)]


def min_distance(colours: Sequence[RGB]) -> float:
    """The smallest CIELAB distance between two of ``colours``."""
    lab = to_lab(np.asarray(colours, np.float64))
    d = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
    d[np.diag_indices(len(lab))] = np.inf
    return float(d.min())
