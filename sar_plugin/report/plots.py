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

Colours come from :mod:`~sar_plugin.report.palette` (one colour per class
index, or per run, in every figure). A panel that cannot be drawn says why
in the figure itself, and :func:`draw_all` hands the same explanation to
the document (see :class:`Skipped`): t-SNE needs scikit-learn, the
plug-in's optional ``report`` extra (:data:`INSTALL_REPORT`).
"""
import os.path as osp
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .document import Image
from .palette import colour_of
from .runs import RunRecord

DPI = 100

#: the optional dependencies of the report (``pyproject.toml``)
REPORT_EXTRA = 'report'
#: the command that installs them
INSTALL_REPORT = 'pip install "sar_plugin[report]"'
#: the same from a source checkout
INSTALL_REPORT_CHECKOUT = 'pip install -e ".[report]"'
#: t-SNE needs at least this many sampled features
TSNE_MIN_FEATURES = 5


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
    """The colours of indices ``0 .. n-1`` (runs or classes): those of
    :func:`~sar_plugin.report.palette.colour_of`."""
    return [colour_of(i) for i in range(n)]


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


@dataclass
class Skipped:
    """Why a panel of a figure was not drawn.

    Attributes:
        reason: ``'missing'`` (an optional dependency is not installed),
            ``'few'`` (too few samples) or ``'off'`` (turned off).
        figure: The text drawn in the empty panel.
        document: The sentence for the report (Markdown).
    """
    reason: str
    figure: str
    document: str


def sklearn_missing() -> Optional[Skipped]:
    """``None`` when scikit-learn's t-SNE imports, else what to say."""
    try:
        from sklearn.manifold import TSNE  # noqa: F401
    except ImportError as err:
        return Skipped(
            'missing',
            't-SNE not drawn:\nscikit-learn is not installed\n'
            f'(the "{REPORT_EXTRA}" extra)\n\n{INSTALL_REPORT}',
            '**t-SNE not drawn: scikit-learn is not installed** '
            f'(`{err}`). It comes with the plug-in\'s optional '
            f'`{REPORT_EXTRA}` extra: `{INSTALL_REPORT}` (from a source '
            f'checkout: `{INSTALL_REPORT_CHECKOUT}`), then make the report '
            'again. The feature figures show the PCA panel only.')
    return None


def too_few(run_name: str, num: int) -> Optional[Skipped]:
    """``None`` when ``num`` features are enough for t-SNE."""
    if num >= TSNE_MIN_FEATURES:
        return None
    return Skipped(
        'few',
        f't-SNE not drawn:\nonly {num} sampled features\n'
        f'(t-SNE needs at least {TSNE_MIN_FEATURES})',
        f'**t-SNE not drawn for {run_name}**: only {num} sampled '
        f'features, t-SNE needs at least {TSNE_MIN_FEATURES} '
        '(FeatureCompactnessMetric\'s `save_per_class` sets how many are '
        'saved per class).')


TSNE_OFF = Skipped(
    'off', 't-SNE turned off\n(--no-tsne)',
    't-SNE turned off (`--no-tsne`): the feature figures show the PCA '
    'panel only.')


def tsne_2d(features: np.ndarray, seed: int = 0) -> Optional[np.ndarray]:
    """t-SNE to 2-D with scikit-learn, or ``None`` when it is missing or
    there are fewer than :data:`TSNE_MIN_FEATURES` samples (see
    :func:`sklearn_missing` and :func:`too_few` for why)."""
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        return None
    m = features.shape[0]
    if m < TSNE_MIN_FEATURES:
        return None
    perplexity = float(min(30, (m - 1) / 3))
    return TSNE(n_components=2, init='pca', random_state=seed,
                perplexity=perplexity).fit_transform(
                    features.astype(np.float64))


def projection_figure(run: RunRecord, use_tsne: bool = True,
                      step: str = '',
                      skipped: Optional[Skipped] = None
                      ) -> Tuple[object, Optional[Skipped]]:
    """The figure of :func:`projection` (not saved) and why its t-SNE
    panel is empty (``None`` when drawn).

    Args:
        skipped: Why t-SNE cannot be drawn for any run (e.g. scikit-learn
            missing, :func:`sklearn_missing`); checked here when ``None``.
    """
    feats, labels = run.feature_sample
    panels = [('PCA', pca_2d(feats))]
    if not use_tsne:
        skipped = TSNE_OFF
    elif skipped is None:
        skipped = sklearn_missing() or too_few(run.name, feats.shape[0])
    if skipped is None:
        print(f'[report] t-SNE {step} of {feats.shape[0]} features x '
              f'{feats.shape[1]} of {run.name} ...', flush=True)
        start = time.perf_counter()
        panels.append(('t-SNE', tsne_2d(feats)))
        print(f'[report] t-SNE {step} done in '
              f'{time.perf_counter() - start:.1f} s', flush=True)
    elif skipped.reason != 'off':
        print(f'[report] t-SNE {step} of {run.name} not drawn: ' +
              skipped.figure.replace('\n\n', ': ').replace('\n', ' ')
              .replace('t-SNE not drawn: ', ''), flush=True)
    fig, axes = _figure(figure_size('projection'), 1, 2)
    for ax, (title, emb) in zip(axes, panels):
        for k, cls in enumerate(run.classes):
            sel = labels == k
            if sel.any():
                ax.scatter(emb[sel, 0], emb[sel, 1], s=6, color=colour_of(k),
                           label=cls, alpha=0.7)
        ax.set_title(f'{run.name}: {title} of {len(labels)} sampled features',
                     fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if skipped is not None:
        ax = axes[1]
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color('0.8')
        ax.set_title(f'{run.name}: t-SNE', fontsize=10, color='0.4')
        ax.text(0.5, 0.5, skipped.figure, ha='center', va='center',
                transform=ax.transAxes, fontsize=11,
                color='0.15' if skipped.reason != 'off' else '0.4',
                wrap=True)
    axes[0].legend(fontsize=7, markerscale=2, ncol=1 + len(run.classes) // 12,
                   loc='best')
    return fig, skipped


def projection(run: RunRecord, path: str, use_tsne: bool = True,
               step: str = '', skipped: Optional[Skipped] = None) -> str:
    """The run's sampled features in 2-D (PCA, and t-SNE when available),
    coloured by class (the same colour for a class in every run and
    figure). t-SNE takes seconds to minutes: its start and duration are
    printed, prefixed by ``step`` (e.g. ``'2/3'``). When t-SNE cannot be
    drawn its panel says why (:class:`Skipped`)."""
    fig, _ = projection_figure(run, use_tsne, step, skipped)
    return _save(fig, path)


def _slug(name: str) -> str:
    return ''.join(ch if ch.isalnum() or ch in '-_' else '_' for ch in name)


def draw_all(runs: List[RunRecord], order: np.ndarray, share: np.ndarray,
             basis: str, out_dir: str, use_tsne: bool = True,
             notes: Optional[List[str]] = None) -> 'OrderedDict[str, Image]':
    """Every plot of the report, drawn into ``out_dir``.

    Args:
        notes: When given, the document's sentence of every panel not
            drawn is appended (once each; e.g. the command installing
            scikit-learn when t-SNE is missing).

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
    missing = sklearn_missing() if use_tsne and with_features else None
    for step, i in enumerate(with_features, 1):
        path = osp.join(out_dir, f'features_{i}_{_slug(runs[i].name)}.png')
        fig, skipped = projection_figure(
            runs[i], use_tsne, f'{step}/{len(with_features)}', missing)
        _save(fig, path)
        caption = (f'{runs[i].name}: sampled pre-classifier features in '
                   '2-D, coloured by class (the same colour in every '
                   'figure)')
        if skipped is not None:
            caption += '; PCA only: ' + {
                'missing': 'scikit-learn, which t-SNE needs, is not '
                'installed (see above)',
                'few': 'too few features for t-SNE',
                'off': 't-SNE turned off'}[skipped.reason]
            if notes is not None and skipped.document not in notes:
                notes.append(skipped.document)
        out[f'projection_{i}'] = Image(path, caption)
    return out
