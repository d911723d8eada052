"""tools/device_check.py: runs end to end with ``--device cpu`` at tiny
sizes (from another directory, as a fresh clone would) and writes its JSON
and Markdown report; a part that fails makes the exit code non-zero
without stopping the others; the demo log is read for the gate."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import REPO_ROOT

TOOL = osp.join(REPO_ROOT, 'tools', 'device_check.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('device_check', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(tmp_path, *args, timeout=900):
    out = tmp_path / 'report'
    proc = subprocess.run([sys.executable, TOOL, '--out', str(out), *args],
                          capture_output=True, text=True, timeout=timeout,
                          cwd=str(tmp_path))
    report = json.loads((out / 'device_check.json').read_text())
    return proc, report, (out / 'device_check.md').read_text(), out


def test_cpu_end_to_end_at_tiny_sizes(tmp_path):
    proc, report, md, out = run_tool(tmp_path, '--device', 'cpu', '--tiny')
    parts = report['parts']
    errors = {name: part.get('error') for name, part in parts.items()
              if part['status'] != 'passed'}
    assert proc.returncode == 0, (errors, proc.stdout[-3000:],
                                  proc.stderr[-3000:])
    assert list(parts) == ['environment', 'tests', 'loss', 'train', 'demo']
    assert not errors and report['status'] == 'passed'
    assert all(part['seconds'] >= 0 for part in parts.values())

    env = report['environment']
    assert env['torch'] == torch.__version__
    assert env['cuda_available'] == torch.cuda.is_available()
    assert {n for n, e in env['imports'].items() if e['ok']} == {
        'torch', 'mmengine', 'mmcv', 'mmcv.ops', 'mmseg', 'sar_plugin'}
    assert report['mmseg_ok'] is True

    tests = parts['tests']
    assert tests['passed'] >= 50 and tests['failed'] == 0
    assert tests['skipped'] == 0  # -k cpu selects no CUDA case
    assert '-k cpu' in tests['command']

    loss = parts['loss']
    assert [(t['classes'], t['dtype']) for t in loss['tables']] == [
        (19, 'float32'), (19, 'bfloat16'), (150, 'float32'),
        (150, 'bfloat16')]
    for table in loss['tables']:
        sar = next(row for row in table['rows'] if row['loss'] == 'SAR')
        assert sar['ms'] > 0 and sar['x_reference'] > 0
    assert (out / loss['markdown']).exists()

    train = parts['train']
    assert set(train['configs']) == {'camvid', 'cityscapes'}
    for entry in train['configs'].values():
        assert [row['variant'] for row in entry['rows']] == ['plain',
                                                             'anchors']
        assert all(row['s_per_iter'] > 0 for row in entry['rows'])

    demo = parts['demo']
    assert demo['iterations_logged'] == 4 and demo['all_losses_finite']
    assert '--amp' in demo['command']
    # an AMP optim wrapper (CPUAutocastOptimWrapper here, bf16 autocast)
    assert demo['optim_wrapper'].endswith('OptimWrapper')
    assert demo['optim_wrapper'] != 'OptimWrapper'
    assert {'decode.loss_ce', 'decode.loss_sar_anchor',
            'decode.loss_sar_pull'} <= set(demo['loss_terms'])
    assert isinstance(demo['gate_opened'], bool)

    assert md.startswith('# Device check: cpu')
    assert 'Overall: **passed**' in md
    for name in parts:
        assert f'| {name} | passed |' in md
    assert '## Loss benchmark' in md and '## Training step' in md
    assert '`import mmseg`: imports' in md
    for name in ('tests.log', 'loss_benchmark.log', 'demo.log'):
        assert (out / name).exists()


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason='needs a machine without CUDA')
def test_a_failed_part_fails_the_run_and_the_others_still_run(tmp_path):
    proc, report, md, _ = run_tool(tmp_path, '--device', 'cuda', '--skip',
                                   'tests', 'loss', 'train', 'demo',
                                   timeout=300)
    assert proc.returncode == 1
    assert report['status'] == 'failed'
    assert report['failed_parts'] == ['environment']
    env = report['parts']['environment']
    assert 'torch.cuda.is_available() is False' in env['error']
    for name in ('tests', 'loss', 'train', 'demo'):
        assert report['parts'][name]['status'] == 'skipped'
    assert report['environment']['imports']['torch']['ok']
    assert 'Overall: **failed**' in md
    assert '| environment | failed |' in md


def test_demo_log_is_read_for_the_gate(tmp_path):
    tool = load_tool()
    run = tmp_path / '20261202_120000'
    run.mkdir()
    lines = [
        '12/02 12:00:01 - mmengine - INFO - Iter(train) [  1/200]  '
        'lr: 5.0e-03  loss: 2.1  decode.loss_ce: 2.0  '
        'decode.loss_sar_anchor: 0.1000  decode.loss_sar_pull: 0.0000',
        'an unrelated line: decode.loss_sar_pull: 5.0',
        '12/02 12:00:02 - mmengine - INFO - Iter(train) [  2/200]  '
        'lr: 5.0e-03  loss: 2.2  decode.loss_ce: 2.0  '
        'decode.loss_sar_anchor: 0.1000  decode.loss_sar_pull: 0.0300',
    ]
    (run / '20261202_120000.log').write_text('\n'.join(lines) + '\n')
    records, source = tool.read_train_log(str(tmp_path))
    assert source.endswith('20261202_120000.log')
    assert [r['iter'] for r in records] == [1, 2]
    assert [r['decode.loss_sar_pull'] for r in records] == [0.0, 0.03]
    # MMEngine's scalars file, when there is one, is read instead
    vis = run / 'vis_data'
    vis.mkdir()
    vis.joinpath('scalars.json').write_text(
        json.dumps({'lr': 0.005, 'loss': 2.1, 'decode.loss_sar_pull': 0.0,
                    'iter': 1}) + '\n' +
        json.dumps({'mIoU': 1.0, 'step': 1}) + '\n' +
        json.dumps({'lr': 0.005, 'loss': float('nan'),
                    'decode.loss_sar_pull': 1e-6, 'iter': 2}) + '\n')
    records, source = tool.read_train_log(str(tmp_path))
    assert source.endswith('scalars.json')
    assert [r['decode.loss_sar_pull'] for r in records] == [0.0, 1e-6]
    assert records[1]['loss'] != records[1]['loss']  # NaN read as NaN
