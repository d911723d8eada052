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


# ------------------------------------------------------- the family tables
FAMILY = {
    '### The anchor-loss family on the demo':
    osp.join(REPO_ROOT, 'docs', 'results', 'family_demo', 'results.json'),
}


def family_rows(heading):
    text = open(osp.join(REPO_ROOT, 'README.md')).read()
    start = text.index(heading)
    end = re.compile(r'^#', re.M).search(text, start + 1)
    section = text[start:end.start() if end else len(text)]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if line.startswith('| ') and len(cells) == 8 and \
                cells[0] != 'method':
            # a label may name the sweep's method in backticks:
            # "LargeMargin `lm-w0.3`"
            name = re.search(r'`([^`]+)`', cells[0])
            rows.append([name.group(1) if name else cells[0]] + cells[1:])
    return section, rows


@pytest.mark.parametrize('heading', list(FAMILY))
def test_readme_family_table_is_the_results_json(heading):
    """Every row: mean ± sample std over seeds 0, 1, 2 of mIoU, the
    head/body/tail buckets and the Fisher ratio of the held-out split, and
    the paired mIoU difference to the first row with its 95% t interval
    and the seeds where it is above, recomputed from the committed
    results.json with numpy and scipy."""
    scipy_stats = pytest.importorskip('scipy.stats')
    runs = json.load(open(FAMILY[heading]))['runs']
    section, rows = family_rows(heading)
    assert len(rows) >= 7, 'CE and every family loss'
    assert 'Produced by' in section and 'results.json' in section

    def vals(method, group, key):
        out = {r['seed']: float(r[group][key]) for r in runs
               if r['method'] == method and r['split'] == 'test'
               and r['status'] == 'ok'}
        assert sorted(out) == [0, 1, 2], (method, key)
        return np.array([out[s] for s in (0, 1, 2)])

    reference = rows[0][0]
    for cells in rows:
        method = cells[0]
        columns = [('summary', 'mIoU'), ('buckets', 'head'),
                   ('buckets', 'body'), ('buckets', 'tail'),
                   ('features', 'fisher')]
        for cell, (group, key) in zip(cells[1:6], columns):
            v = vals(method, group, key)
            mean, std = (float(x) for x in cell.split(' ± '))
            tol = 0.0006 if key == 'fisher' else 0.006
            assert mean == pytest.approx(v.mean(), abs=tol), (method, key)
            assert std == pytest.approx(v.std(ddof=1), abs=tol), (method, key)
        if method == reference:
            assert cells[6] == cells[7] == ''
            continue
        d = vals(method, 'summary', 'mIoU') - \
            vals(reference, 'summary', 'mIoU')
        match = re.fullmatch(r'(\S+) \[(\S+), (\S+)\]', cells[6])
        assert match, cells[6]
        half = scipy_stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
        for got, want in zip(match.groups(),
                             (d.mean(), d.mean() - half, d.mean() + half)):
            assert number(got) == pytest.approx(want, abs=0.006), method
        assert cells[7] == f'{int((d > 0).sum())}/3'


def test_family_table_tool_prints_the_readme_camvid_rows():
    """tools/analysis/family_table.py (which printed the family tables)
    gives the CamVid table's numbers from its results.json."""
    import subprocess
    import sys
    out = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'analysis',
                                  'family_table.py'), RESULTS, '--methods',
         'ce=CE', 'wce=weighted CE', 'sar=SAR'],
        capture_output=True, text=True, check=True).stdout
    section = readme_section()
    for name in NAMES:
        row = re.search(rf'^\| {name} \| (.+?) \| (.+?) \| (.+?) \| (.+?) \|',
                        out, re.M).groups()
        readme = re.search(rf'^\| {name} \| (.+?) \| (.+?) \| (.+?) \| '
                           r'(.+?) \|', section, re.M).groups()
        assert row == readme, name
