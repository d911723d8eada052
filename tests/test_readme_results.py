"""The README's CamVid table is what the committed sweep results say:
recomputed here from ``docs/results/camvid_heldout/results.json`` (the
sweep's per-run numbers), independently of the report code."""
import json
import os.path as osp
import re

import numpy as np
import pytest

from conftest import REPO_ROOT

RESULTS = osp.join(REPO_ROOT, 'docs', 'results', 'camvid_heldout',
                   'results.json')
NAMES = {'CE': 'ce', 'weighted CE': 'wce', 'SAR': 'sar'}


def values(runs, method, split, key):
    out = {}
    for run in runs:
        if run['method'] == method and run['split'] == split:
            source = run['buckets'] if key in ('head', 'body', 'tail') \
                else run['summary']
            out[run['seed']] = float(source[key])
    return out


def readme_section():
    text = open(osp.join(REPO_ROOT, 'README.md')).read()
    start = text.index('### On real data: CamVid')
    # up to the next heading
    end = re.compile(r'^#', re.M).search(text, start + 1)
    return text[start:end.start() if end else len(text)]


def number(cell):
    return float(cell.replace('−', '-').replace('+', ''))


def test_readme_camvid_summary_is_the_results_json():
    runs = json.load(open(RESULTS))['runs']
    assert all(r['status'] == 'ok' for r in runs)
    rows = re.findall(r'^\| (CE|weighted CE|SAR) \| (.+) \|$',
                      readme_section(), re.M)
    assert [r[0] for r in rows] == list(NAMES)
    for name, cells in rows:
        cells = [c.strip() for c in cells.split('|')]
        for cell, key in zip(cells, ('mIoU', 'head', 'body', 'tail',
                                     'aAcc')):
            got = values(runs, NAMES[name], 'test', key)
            assert sorted(got) == [0, 1, 2]
            v = np.array([got[s] for s in (0, 1, 2)])
            mean, std = cell.split(' ± ')
            assert float(mean) == pytest.approx(v.mean(), abs=0.006), \
                (name, key)
            assert float(std) == pytest.approx(v.std(ddof=1), abs=0.006)


def test_readme_camvid_paired_rows_are_the_results_json():
    scipy_stats = pytest.importorskip('scipy.stats')
    runs = json.load(open(RESULTS))['runs']
    rows = re.findall(
        r'^\| (SAR|weighted CE) (mIoU|tail mIoU|head mIoU) \| (.+?) \| '
        r'(\S+) \| \[(\S+), (\S+)\] \| (\d)/3 \|$', readme_section(), re.M)
    assert len(rows) == 5
    for name, metric, diffs, mean, low, high, better in rows:
        key = 'mIoU' if metric == 'mIoU' else metric.split()[0]
        ref = values(runs, 'ce', 'test', key)
        got = values(runs, NAMES[name], 'test', key)
        d = np.array([got[s] - ref[s] for s in (0, 1, 2)])
        assert [number(x) for x in diffs.split(', ')] == pytest.approx(
            d, abs=0.006)
        assert number(mean) == pytest.approx(d.mean(), abs=0.006)
        half = scipy_stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
        assert number(low) == pytest.approx(d.mean() - half, abs=0.006)
        assert number(high) == pytest.approx(d.mean() + half, abs=0.006)
        assert int(better) == int((d > 0).sum())
