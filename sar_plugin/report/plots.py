"""The report's pictures (matplotlib, Agg canvas, PNG of a known size).

Every figure is ``width x height`` inches at :data:`DPI`, saved without
``bbox_inches='tight'`` so the pixel size is exactly what
:func:`figure_size` says (the report tests check it).

matplotlib's global state is left alone: each figure is its own
:class:`~matplotlib.figure.Figure` on a
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg` (see
:func:`_figure`); ``pyplot`` is never imported, the backend never switched
and ``rcParams`` never written, so a caller's interactive session or
backend choice is unaffected.
"""
import os.path as osp
import time
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np

from .document import Image
from .runs import RunRecord

DPI = 100


def _figure(figsize: tuple, nrows: int = 1, ncols: int = 1):
    """A new constrained-layout figure on its own Agg canvas and its axes
    (``fig.subplots(nrows, ncols)``), outside pyplot's figure registry."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize, layout='constrained')
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols)


def figure_size(kind: str, num_classes: int = 0,
                num_runs: int = 1) -> tuple:
    """Figure size in inches (pixels = inches x :data:`DPI`).

    Per-class bar charts widen with the number of classes (0.45 in per class
    and run, at least 8 in, at most 40 in); the others are fixed.
    """
    if kind in ('per_class', 'delta'):
        per = 0.45 * (num_runs if kind == 'per_class' else
                      max(num_runs - 1, 1))
        return (float(min(max(8.0, 1.5 + per * num_classes), 40.0)), 4.5)
    if kind == 'vs_frequency':
        return (7.0, 4.5)
    if kind == 'projection':
        return (11.0, 5.0)
    raise KeyError(f'unknown figure kind {kind!r}')


def _colours(n: int) -> List:
    from matplotlib import colormaps
    cmap = colormaps['tab10' if n <= 10 else 'tab20']
    return [cmap(i % cmap.N) for i in range(n)]


def _tick_labels(classes: Sequence[str], share: np.ndarray,
                 order: np.ndarray) -> List[str]:
    return [f'{classes[i]}\n{100 * share[i]:.2g}%' for i in order]


def _bucket_lines(ax, order: np.ndarray, classes: Sequence[str],
                  buckets: Optional[Dict[str, List[str]]]) -> None:
    """Dashed separators and names of the buckets along the class axis."""
    if not buckets:
        return
    pos = {classes[c]: i for i, c in enumerate(order)}
    for name, members in buckets.items():
        xs = [pos[m] for m in members if m in pos]
        if not xs:
            continue
        lo, hi = min(xs) - 0.5, max(xs) + 0.5
        if lo > -0.5:
            ax.axvline(lo, color='0.5', ls='--', lw=0.8)
        ax.text((lo + hi) / 2, 1.0, name, transform=ax.get_xaxis_transform(),
                ha='center', va='bottom', fontsize=9, color='0.3')


def _save(fig, path: str) -> str:
    fig.savefig(path, dpi=DPI)
    return path


def per_class_bars(runs: List[RunRecord], order: np.ndarray,
                   share: np.ndarray, path: str) -> str:
    """Per-class score of every run side by side, classes by frequency."""
    k, r = len(order), len(runs)
    fig, ax = _figure(figure_size('per_class', k, r))
    width = 0.8 / r
    x = np.arange(k)
    for j, (run, colour) in enumerate(zip(runs, _colours(r))):
        ax.bar(x + (j - (r - 1) / 2) * width, run.scores[order], width,
               label=run.name, color=colour)
    ax.set_xticks(x, _tick_labels(runs[0].classes, share, order),
                  fontsize=8)
    ax.set_xlim(-0.6, k - 0.4)
    ax.set_ylim(0, 100)
    ax.set_ylabel(f'{runs[0].score_name} (%)')
    ax.set_xlabel('class (training share), most frequent first')
    _bucket_lines(ax, order, runs[0].classes, runs[0].buckets)
    ax.legend(fontsize=8, loc='upper right')
    ax.grid(axis='y', alpha=0.3)
    return _save(fig, path)


def delta_bars(runs: List[RunRecord], order: np.ndarray, share: np.ndarray,
               path: str) -> str:
    """Per-class score change of every run against the first one."""
    k, r = len(order), len(runs)
    fig, ax = _figure(figure_size('delta', k, r))
    others = runs[1:]
    width = 0.8 / max(len(others), 1)
    x = np.arange(k)
    for j, run in enumerate(others):
        delta = run.scores[order] - runs[0].scores[order]
        colours = ['tab:green' if d >= 0 else 'tab:red'
                   for d in np.nan_to_num(delta)]
        offset = (j - (len(others) - 1) / 2) * width
        bars = ax.bar(x + offset, delta, width, color=colours,
                      edgecolor='black' if len(others) > 1 else None,
                      linewidth=0.5, label=run.name)
        if len(others) > 1:
            ax.bar_label(bars, labels=[run.name] * k, fontsize=6,
                         rotation=90)
    ax.axhline(0, color='black', lw=0.8)
    ax.set_xticks(x, _tick_labels(runs[0].classes, share, order),
                  fontsize=8)
    ax.set_xlim(-0.6, k - 0.4)
    ax.set_ylabel(f'{runs[0].score_name} change vs {runs[0].name} (points)')
    ax.set_xlabel('class (training share), most frequent first')
    _bucket_lines(ax, order, runs[0].classes, runs[0].buckets)
    ax.grid(axis='y', alpha=0.3)
    return _save(fig, path)


def trend(share: np.ndarray, scores: np.ndarray) -> Optional[np.ndarray]:
    """Least-squares ``score = a + b log10(share)``; ``(a, b)`` or ``None``
    with fewer than two usable classes."""
    ok = np.isfinite(scores) & (share > 0)
    if ok.sum() < 2 or np.ptp(np.log10(share[ok])) == 0:
        return None
    b, a = np.polyfit(np.log10(share[ok]), scores[ok], 1)
    return np.array([a, b])


def score_vs_frequency(runs: List[RunRecord], share: np.ndarray,
                       basis: str, path: str) -> str:
    """Per-class score against training share (log x), a trend per run."""
    fig, ax = _figure(figure_size('vs_frequency'))
    positive = share > 0
    xs = np.logspace(np.log10(share[positive].min()),
                     np.log10(share[positive].max()), 50) \
        if positive.any() else None
    for run, colour in zip(runs, _colours(len(runs))):
        ax.scatter(share[positive], run.scores[positive], color=colour,
                   s=22, label=run.name, alpha=0.85)
        fit = trend(share, run.scores)
        if fit is not None and xs is not None:
            ax.plot(xs, fit[0] + fit[1] * np.log10(xs), color=colour,
                    lw=1.2, label=f'{run.name} trend '
                    f'({fit[1]:+.1f} per decade)')
    ax.set_xscale('log')
    ax.set_ylim(0, 100)
    ax.set_xlabel(f'class share of the {"training" if basis == "train" else "evaluated"} '
                  'set (log)')
    ax.set_ylabel(f'{runs[0].score_name} (%)')
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which='both')
    return _save(fig, path)


def pca_2d(features: np.ndarray) -> np.ndarray:
    """Project ``M x C`` features onto their first two principal axes."""
    x = features.astype(np.float64)
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    proj = x @ vt[:2].T
    if proj.shape[1] < 2:
        proj = np.pad(proj, ((0, 0), (0, 2 - proj.shape[1])))
    return proj


def tsne_2d(features: np.ndarray, seed: int = 0) -> Optional[np.ndarray]:
    """t-SNE to 2-D with scikit-learn, or ``None`` when it is missing or
    there are too few samples."""
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        return None
    m = features.shape[0]
    if m < 5:
        return None
    perplexity = float(min(30, (m - 1) / 3))
    return TSNE(n_components=2, init='pca', random_state=seed,
                perplexity=perplexity).fit_transform(
                    features.astype(np.float64))


def projection(run: RunRecord, path: str, use_tsne: bool = True,
               step: str = '') -> str:
    """The run's sampled features in 2-D (PCA, and t-SNE when available),
    coloured by class (the same colour for a class in every run). t-SNE
    takes seconds to minutes: its start and duration are printed, prefixed
    by ``step`` (e.g. ``'2/3'``)."""
    feats, labels = run.feature_sample
    panels = [('PCA', pca_2d(feats))]
    if use_tsne:
        print(f'[report] t-SNE {step} of {feats.shape[0]} features x '
              f'{feats.shape[1]} of {run.name} ...', flush=True)
        start = time.perf_counter()
        emb = tsne_2d(feats)
        print(f'[report] t-SNE {step} done in '
              f'{time.perf_counter() - start:.1f} s' if emb is not None
              else f'[report] t-SNE {step} skipped (scikit-learn missing '
              'or fewer than 5 features)', flush=True)
        if emb is not None:
            panels.append(('t-SNE', emb))
    fig, axes = _figure(figure_size('projection'), 1, 2)
    colours = _colours(len(run.classes))
    for ax, (title, emb) in zip(axes, panels):
        for k, cls in enumerate(run.classes):
            sel = labels == k
            if sel.any():
                ax.scatter(emb[sel, 0], emb[sel, 1], s=6, color=colours[k],
                           label=cls, alpha=0.7)
        ax.set_title(f'{run.name}: {title} of {len(labels)} sampled features',
                     fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if len(panels) == 1:
        axes[1].axis('off')
        axes[1].text(0.5, 0.5, 't-SNE skipped\n(scikit-learn not installed '
                     'or disabled)', ha='center', va='center')
    axes[0].legend(fontsize=7, markerscale=2, ncol=1 + len(run.classes) // 12,
                   loc='best')
    return _save(fig, path)


def _slug(name: str) -> str:
    return ''.join(ch if ch.isalnum() or ch in '-_' else '_' for ch in name)


def draw_all(runs: List[RunRecord], order: np.ndarray, share: np.ndarray,
             basis: str, out_dir: str,
             use_tsne: bool = True) -> 'OrderedDict[str, Image]':
    """Every plot of the report, drawn into ``out_dir``.

    Returns:
        OrderedDict: ``per_class``, ``delta`` (with more than one run),
        ``vs_frequency`` and ``projection_<i>`` (runs with a feature
        sample) -> the captioned picture.
    """
    ref = runs[0]
    score = ref.score_name
    out = OrderedDict()
    out['per_class'] = Image(
        per_class_bars(runs, order, share,
                       osp.join(out_dir, f'per_class_{score}.png')),
        f'Per-class {score}, classes by frequency, runs side by side')
    if len(runs) > 1:
        out['delta'] = Image(
            delta_bars(runs, order, share,
                       osp.join(out_dir, f'delta_{score}.png')),
            f'Per-class {score} change against {ref.name}')
    out['vs_frequency'] = Image(
        score_vs_frequency(runs, share, basis,
                           osp.join(out_dir, f'{score}_vs_frequency.png')),
        f'{score} against class frequency (log scale), with a '
        'least-squares trend per run')
    with_features = [i for i, run in enumerate(runs)
                     if run.feature_sample is not None
                     and len(run.feature_sample[1])]
    for step, i in enumerate(with_features, 1):
        path = osp.join(out_dir, f'features_{i}_{_slug(runs[i].name)}.png')
        out[f'projection_{i}'] = Image(
            projection(runs[i], path, use_tsne,
                       f'{step}/{len(with_features)}'),
            f'{runs[i].name}: sampled pre-classifier features in 2-D, '
            'coloured by class')
    return out
