"""The long-tail report on two small recorded runs: files, numbers, plot
sizes, a self-contained HTML; records written by the real metrics."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmseg.registry import METRICS

from conftest import REPO_ROOT
from test_longtail_eval import sample

from sar_plugin.report import load_run, make_report
from sar_plugin.report.plots import DPI, figure_size, pca_2d, trend

CLASSES = ('road', 'car', 'sign', 'rider')
# training pixels: road 69%, car 20%, sign 9%, rider 2%
FREQ = dict(classes=list(CLASSES), counts=[690, 200, 90, 20])
TOOL = osp.join(REPO_ROOT, 'tools', 'longtail_report.py')


def record_run(root, preds, gts, spread, iteration=100):
    """A run dir as a training run leaves it: ``<root>/<timestamp>/`` with
    the records of LongTailIoUMetric and FeatureCompactnessMetric."""
    log_dir = osp.join(root, '20261124_120000')
    iou = METRICS.build(dict(type='LongTailIoUMetric', class_frequency=FREQ,
                             record_dir=osp.join(log_dir, 'longtail_eval')))
    iou.dataset_meta = dict(classes=CLASSES)
    for p, g in zip(preds, gts):
        iou.process({}, [sample(p, g)])
    metrics = iou.evaluate(len(preds))

    feat = METRICS.build(dict(type='FeatureCompactnessMetric', per_class=40,
                              class_frequency=FREQ, save_per_class=30,
                              record_dir=osp.join(log_dir, 'feature_eval')))
    feat.dataset_meta = dict(classes=CLASSES)
    g = torch.Generator().manual_seed(0)
    label = torch.arange(4).repeat_interleave(16).reshape(1, 8, 8)
    centers = torch.eye(4, 6) * 4
    x = centers[label[0]].permute(2, 0, 1) + spread * torch.randn(
        6, 8, 8, generator=g)
    feat.process({}, [dict(seg_features=x, gt_sem_seg=dict(data=label))])
    metrics.update(feat.evaluate(1))
    return metrics


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('runs')
    gt = [[0, 0, 0, 0, 1, 1, 2, 3, 255]]
    # baseline: road I/U 4/5 (a car pixel predicted road), car 1/2, sign 1/2
    # (the rider pixel predicted sign), rider 0/1; the ignored pixel counts
    # nowhere
    base_pred = [[0, 0, 0, 0, 0, 1, 2, 2, 3]]
    # SAR: road 3/4 (a road pixel predicted rider), car 2/2, sign 1/1,
    # rider 1/2
    sar_pred = [[0, 0, 0, 3, 1, 1, 2, 3, 0]]
    base = record_run(str(root / 'baseline'), [base_pred], [gt], spread=3.0)
    sar = record_run(str(root / 'sar'), [sar_pred], [gt], spread=0.3)
    return root, base, sar


def test_recorded_numbers_are_the_hand_computed_ones(runs):
    _, base, sar = runs
    assert [base[f'IoU.{c}'] for c in CLASSES] == [80.0, 50.0, 50.0, 0.0]
    assert [sar[f'IoU.{c}'] for c in CLASSES] == [75.0, 100.0, 100.0, 50.0]
    # cumulative buckets: head road (69% >= 50%), tail rider (2%; with sign
    # 11% > 10%), body car + sign
    assert (base['mIoU.head'], base['mIoU.body'], base['mIoU.tail']) == \
        (80.0, 50.0, 0.0)


def test_report_files_tables_plots_and_html(runs, tmp_path):
    root, base, sar = runs
    out = tmp_path / 'report'
    proc = subprocess.run(
        [sys.executable, TOOL, str(root / 'baseline'), str(root / 'sar'),
         '--out', str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f'written {out / "report.html"}' in proc.stdout

    md = (out / 'report.md').read_text()
    # per-class table: most frequent first, delta against the first run
    rows = re.findall(r'^\| (road|car|sign|rider) \| ([^|]+) \| (\w+) \| '
                      r'([^|]+) \| ([^|]+) \|$', md, re.M)
    assert [r[0] for r in rows] == ['road', 'car', 'sign', 'rider']
    assert [r[2] for r in rows] == ['head', 'body', 'body', 'tail']
    assert [r[1].strip() for r in rows] == ['69', '20', '9', '2']
    assert [r[3].strip() for r in rows] == ['80.00', '50.00', '50.00',
                                            '0.00']
    assert [r[4].strip() for r in rows] == [
        '75.00 (-5.00)', '100.00 (+50.00)', '100.00 (+50.00)',
        '50.00 (+50.00)']
    # summary and bucket tables
    assert f"| **mIoU** | {base['mIoU']:.2f} | {sar['mIoU']:.2f} " \
        f"({sar['mIoU'] - base['mIoU']:+.2f}) |" in md
    assert '| **head** | road | 69.00 | 80.00 | 75.00 (-5.00) |' in md
    assert '| **body** | car, sign | 29.00 | 50.00 | 100.00 (+50.00) |' in md
    assert '| **tail** | rider | 2.00 | 0.00 | 50.00 (+50.00) |' in md
    assert f"| features: fisher | {base['feat/fisher']:.3f} | " in md
    assert 'Rule: classes sorted by training share' in md

    numbers = json.load(open(out / 'report.json'))
    assert numbers['classes'] == ['road', 'car', 'sign', 'rider']
    assert numbers['scores']['sar'] == [75.0, 100.0, 100.0, 50.0]
    assert numbers['bucket_scores']['baseline'] == dict(head=80.0,
                                                        body=50.0, tail=0.0)

    # every PNG opens and has the size the figure was made with
    expected = {
        'per_class_IoU.png': figure_size('per_class', 4, 2),
        'delta_IoU.png': figure_size('delta', 4, 2),
        'IoU_vs_frequency.png': figure_size('vs_frequency'),
        'features_0_baseline.png': figure_size('projection'),
        'features_1_sar.png': figure_size('projection'),
    }
    for name, (w, h) in expected.items():
        img = cv2.imread(str(out / name))
        assert img is not None, name
        assert img.shape[:2] == (round(h * DPI), round(w * DPI)), name
        assert img.std() > 10, f'{name} is blank'
        assert f']({name})' in md

    # the HTML is self-contained: every picture embedded, nothing external
    html = (out / 'report.html').read_text()
    assert html.count('src="data:image/png;base64,') == len(expected)
    assert not re.search(r'(src|href)="(?!data:)', html)
    assert 'http' not in html and '<link' not in html
    assert '<td>100.00 (<span class="pos">+50.00</span>)</td>' in html


def test_feature_metrics_tell_compact_from_scattered(runs):
    root, base, sar = runs
    assert sar['feat/fisher'] > 10 * base['feat/fisher']
    assert sar['feat/silhouette'] > 0.8 > base['feat/silhouette']
    run = load_run(str(root / 'sar'))
    feats, labels = run.feature_sample
    assert feats.shape == (64, 6) and np.bincount(labels).tolist() == [16] * 4
    assert run.features.summary['fisher'] == pytest.approx(
        sar['feat/fisher'], rel=1e-3)


def test_pca_and_trend_against_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * np.array([5, 2, 1, .5, .1])
    proj = pca_2d(x)
    cov = np.cov(proj.T)
    assert cov[0, 0] > cov[1, 1] > 0 and abs(cov[0, 1]) < 1e-8
    evals = np.sort(np.linalg.eigvalsh(np.cov(x.T)))[::-1]
    assert np.diag(cov) == pytest.approx(evals[:2])
    share = np.array([.5, .05, .005])
    a, b = trend(share, np.array([90., 70., 50.]))
    assert b == pytest.approx(20.0) and a == pytest.approx(90 + 20 * np.log10(2))
    assert trend(share, np.array([90., np.nan, np.nan])) is None


def test_classification_record_and_pca_only(tmp_path):
    log = tmp_path / 'cls' / '20261124_000000' / 'longtail_eval'
    log.mkdir(parents=True)
    record = dict(task='classification', score='Acc',
                  classes=['a', 'b', 'c'], Acc=[90.0, 60.0, None],
                  counts=[10, 10, 10], frequency=[.8, .15, .05],
                  buckets=dict(many=['a'], medium=['b'], few=['c']),
                  bucket_rule='training samples per class: many > 100, '
                  'few < 20, medium = the rest',
                  bucket_scores=dict(many=90.0, medium=60.0, few=None),
                  summary=dict(top1=50.0, top5=100.0), iter=7)
    (log / 'latest.json').write_text(json.dumps(record))
    files = make_report([str(tmp_path / 'cls')], str(tmp_path / 'out'),
                        use_tsne=False)
    md = open(files['markdown']).read()
    assert 'Classification, per-class Acc' in md
    assert '| **top1** | 50.00 |' in md
    assert '| **few** | c | 5.00 | n/a |' in md
    assert '| c | 5 | few | n/a |' in md
    assert 'delta' not in files  # one run: nothing to compare


def test_incomparable_runs_and_missing_records_are_explained(runs, tmp_path):
    root, _, _ = runs
    with pytest.raises(FileNotFoundError, match='longtail_eval/latest.json'):
        load_run(str(tmp_path))
    other = tmp_path / 'other' / '20261124_000000' / 'longtail_eval'
    other.mkdir(parents=True)
    (other / 'latest.json').write_text(json.dumps(dict(
        classes=['x', 'y'], score='IoU', IoU=[1.0, 2.0])))
    with pytest.raises(ValueError, match='cannot be compared'):
        make_report([str(root / 'baseline'), str(tmp_path / 'other')],
                    str(tmp_path / 'out'))
    with pytest.raises(ValueError, match='--names: 1 names for 2 runs'):
        make_report([str(root / 'baseline'), str(root / 'sar')],
                    str(tmp_path / 'out'), names=['x'])


# Run in a fresh interpreter (pytest or another test may have imported
# pyplot already): note matplotlib's global state, import the report package,
# draw every plot of a long-tail report (with t-SNE) and of a sweep report,
# and compare. MPLBACKEND=svg is a headless backend other than Agg, so a
# forced switch to Agg (or any backend change) would show.
GLOBAL_STATE_SCRIPT = r'''
import json, sys
import matplotlib

def state():
    return (matplotlib.get_backend(), dict(matplotlib.rcParams),
            'matplotlib.pyplot' in sys.modules)

before = state()
from sar_plugin.report import make_report, make_sweep_report
root, results, out = sys.argv[1:4]
files = make_report([root + '/baseline', root + '/sar'], out + '/report',
                    use_tsne=True)
files.update(make_sweep_report(json.load(open(results)), out + '/sweep',
                               resamples=50))
after = state()
print(json.dumps(dict(
    backend=[before[0], after[0]],
    rc_changed=sorted(k for k in set(before[1]) | set(after[1])
                      if before[1].get(k, '<unset>')
                      != after[1].get(k, '<unset>')),
    pyplot=[before[2], after[2]],
    pngs=sorted(k for k, v in files.items() if v.endswith('.png')))))
'''


def test_plots_leave_matplotlib_global_state_alone(runs, tmp_path):
    from test_sweep import RUNS
    root, _, _ = runs
    results = tmp_path / 'results.json'
    results.write_text(json.dumps(dict(
        sweep=dict(methods=dict(base='base.py', sar='sar.py'), seeds=[0, 1, 2],
                   splits=['val', 'test'], cfg_options=[]),
        runs=RUNS)))
    env = dict(os.environ, MPLBACKEND='svg')
    proc = subprocess.run(
        [sys.executable, '-c', GLOBAL_STATE_SCRIPT, str(root),
         str(results), str(tmp_path / 'out')],
        capture_output=True, text=True, timeout=300, env=env, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    # every plot was drawn: long-tail report (with both projections) and
    # both splits of the sweep
    assert found['pngs'] == sorted([
        'per_class', 'delta', 'vs_frequency', 'projection_0',
        'projection_1', 'val_summary', 'val_per_class', 'val_paired',
        'test_summary', 'test_per_class'])
    assert found['backend'] == ['svg', 'svg']
    assert found['rc_changed'] == []
    assert found['pyplot'] == [False, False]


def test_records_are_whole_or_named(tmp_path):
    """Issue 21, cases 8 and 13: records are written through a temporary
    file and a rename (no half-written file, no temporary left behind); a
    truncated record or feature sample is refused naming the file."""
    import glob as _glob
    import shutil

    from sar_plugin.report.runs import load_run
    gt = [[0, 0, 1, 2, 3]]
    record_run(str(tmp_path / 'run'), [[[0, 0, 1, 2, 2]]], [gt], spread=1.0)
    log_dir = tmp_path / 'run' / '20261124_120000'
    files = sorted(osp.basename(p) for p in _glob.glob(
        str(log_dir / '*' / '*'), recursive=False))
    assert not [f for f in files if f.startswith('.')], files
    assert load_run(str(tmp_path / 'run')).scores.shape == (4, )
    for name, cut in (('longtail_eval/latest.json', 'record'),
                      ('feature_eval/latest.npz', 'feature sample')):
        broken = tmp_path / f'broken_{cut[0]}'
        shutil.copytree(tmp_path / 'run', broken)
        path = broken / '20261124_120000' / name
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
        if name.endswith('.json'):  # the report reads iter_<N>.json's twin
            for other in (path.parent).glob('iter_*.json'):
                other.write_bytes(data[:len(data) // 2])
        with pytest.raises(ValueError, match=f'not a readable {cut}') as err:
            load_run(str(broken))
        assert str(broken) in str(err.value)
