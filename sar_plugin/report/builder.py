"""Build the long-tail report of one or more runs (see
``tools/longtail_report.py``): read the runs, draw the plots, lay out the
tables, write the documents."""
import json
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import plots
from .document import Heading, Paragraph, write_documents
from .runs import RunRecord, check_comparable, class_order, load_run
from .tables import ReportTables


def load_runs(paths: Sequence[str],
              names: Optional[Sequence[str]] = None,
              checkpoints: Optional[Sequence[Optional[str]]] = None
              ) -> List[RunRecord]:
    """Read comparable runs and give them unique labels; ``checkpoints``:
    the checkpoint each run evaluated (``None`` or ``'-'``: found from the
    run's records, see :func:`~sar_plugin.report.runs.evaluated`)."""
    if names is not None and len(names) != len(paths):
        raise ValueError(f'--names: {len(names)} names for {len(paths)} runs')
    if checkpoints is not None and len(checkpoints) != len(paths):
        raise ValueError(f'--checkpoints: {len(checkpoints)} checkpoints for '
                         f'{len(paths)} runs (\'-\' for a run without)')
    runs = [load_run(p, None if names is None else names[i],
                     None if checkpoints is None or checkpoints[i] in
                     (None, '-') else checkpoints[i])
            for i, p in enumerate(paths)]
    seen = set()
    for run in runs:
        base, j = run.name, 1
        while run.name in seen:
            j += 1
            run.name = f'{base}-{j}'
        seen.add(run.name)
    check_comparable(runs)
    return runs


def make_report(paths: Sequence[str], out_dir: str,
                names: Optional[Sequence[str]] = None,
                title: Optional[str] = None,
                use_tsne: bool = True,
                checkpoints: Optional[Sequence[Optional[str]]] = None
                ) -> Dict[str, str]:
    """Read the runs, draw the plots and write ``report.md``,
    ``report.html`` and ``report.json`` (the tables' numbers) to
    ``out_dir``.

    Args:
        paths: Run dirs (or log dirs / record files, see
            :func:`~sar_plugin.report.runs.find_record`). The first run is
            the reference every delta is taken against.
        out_dir: Output folder (created).
        names: Labels of the runs (default: their dir names).
        title: Report title.
        use_tsne: Add a t-SNE panel to the projections (needs
            scikit-learn, the ``report`` extra; without it the panel and
            the document say so and name the install command).
        checkpoints: The checkpoint each run evaluated, whose meta gives
            the iteration / epoch shown (default, or ``'-'`` for one run:
            the record's iteration, else the checkpoint named by the
            config dumped beside it).

    Returns:
        dict: ``markdown``, ``html``, ``json`` and each plot's path.
    """
    runs = load_runs(paths, names, checkpoints)
    os.makedirs(out_dir, exist_ok=True)
    order, share, basis = class_order(runs)
    notes: List[str] = []
    images = plots.draw_all(runs, order, share, basis, out_dir, use_tsne,
                            notes)
    tables = ReportTables(runs, order, share, basis)
    blocks = tables.blocks(title) + [Heading('Plots')] + \
        [Paragraph(note) for note in notes] + list(images.values())
    md_path, html_path = write_documents(blocks, out_dir, 'report')
    json_path = osp.join(out_dir, 'report.json')
    with open(json_path, 'w') as f:
        json.dump(report_numbers(tables), f, indent=2)
    return OrderedDict(markdown=md_path, html=html_path, json=json_path,
                       **{key: image.path for key, image in images.items()})


def report_numbers(tables: ReportTables) -> dict:
    """The numbers of the tables, for ``report.json``."""
    runs, order, ref = tables.runs, tables.order, tables.ref
    return dict(
        runs=tables.names, task=ref.task, score=ref.score_name,
        evaluated={r.name: r.evaluated.to_json() for r in runs},
        basis=tables.basis,
        classes=[ref.classes[i] for i in order],
        share=[float(tables.share[i]) for i in order],
        scores={r.name: [_none(r.scores[i]) for i in order] for r in runs},
        summary={r.name: {k: _none(v) for k, v in r.summary.items()}
                 for r in runs},
        buckets=tables.buckets,
        bucket_scores={n: {k: _none(v) for k, v in s.items()}
                       for n, s in tables.per_bucket.items()} or None)


def _none(value) -> Optional[float]:
    return None if value is None or not np.isfinite(value) else float(value)
