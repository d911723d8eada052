"""The seed sweep: statistics against hand-computed values, the report of a
made-up sweep, the tool's helpers, and ``tools/sweep.py`` end to end on the
demo configs (2 methods x 2 seeds, a few iterations on tiny data: train,
skip on rerun, resume after a lost final checkpoint, failures reported)."""
import importlib.util
import json
import math
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from mmengine.config import Config

from conftest import REPO_ROOT
from test_tools import cli_options, run_tool, tiny_options

from sar_plugin.report.stats import (bootstrap_interval, describe,
                                     fmt_interval, fmt_paired, fmt_stat,
                                     paired, t_interval)
from sar_plugin.report.sweep import make_sweep_report
from sar_plugin.report.sweep_tables import (SweepTables, aggregate, collect,
                                            compare)

TOOL = osp.join(REPO_ROOT, 'tools', 'sweep.py')
DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
BASELINE = osp.join(DEMO, 'fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py')
SAR = osp.join(DEMO, 'sar_fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py')
T_975_2 = 4.3027  # t quantile, 0.975, df = 2 (statistics tables)


def load_sweep_tool():
    """``tools/sweep.py`` as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location('_sweep_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sweep_tool = load_sweep_tool()


# ------------------------------------------------------------ statistics


def test_describe_mean_and_sample_std():
    stat = describe({0: 1.0, 1: 2.0, 2: 4.0})
    # mean 7/3; squared deviations 16/9 + 1/9 + 25/9 = 42/9, / (n - 1)
    assert stat.n == 3 and stat.seeds == (0, 1, 2)
    assert stat.mean == pytest.approx(7 / 3)
    assert stat.std == pytest.approx(math.sqrt(7 / 3))
    assert fmt_stat(stat) == '2.33 ± 1.53 (3)'


def test_describe_leaves_out_missing_values_and_counts_them_not():
    stat = describe({0: 5.0, 1: None, 2: float('nan'), 3: float('inf')})
    assert stat.n == 1 and stat.mean == 5.0 and math.isnan(stat.std)
    assert fmt_stat(stat) == '5.00 ± n/a (1)'
    empty = describe({})
    assert empty.n == 0 and math.isnan(empty.mean)
    assert fmt_stat(empty) == 'n/a (0)'


def test_paired_differences_and_t_interval():
    reference = {0: 50.0, 1: 52.0, 2: 51.0, 3: 49.0}
    other = {0: 51.0, 1: 55.0, 2: 50.0, 4: 60.0}  # seeds 3, 4 unpaired
    p = paired(reference, other)
    assert p.seeds == (0, 1, 2) and p.diffs == (1.0, 3.0, -1.0)
    assert p.n == 3 and p.better == 2
    assert p.mean == pytest.approx(1.0)
    assert p.std == pytest.approx(2.0)  # deviations 0, 2, -2: 8 / 2
    half = T_975_2 * 2.0 / math.sqrt(3)  # 4.968
    assert p.t_low == pytest.approx(1 - half, rel=1e-4)
    assert p.t_high == pytest.approx(1 + half, rel=1e-4)
    assert math.isnan(p.boot_low)  # not asked for
    assert fmt_paired(p) == '+1.00 [-3.97, +5.97] (3)'
    # 90%: t_{0.95, 2} = 2.920
    assert t_interval([1.0, 3.0, -1.0], 0.90)[1] == pytest.approx(
        1 + 2.920 * 2 / math.sqrt(3), rel=1e-3)


def test_paired_with_one_common_seed_has_no_interval():
    p = paired({0: 10.0, 1: 11.0}, {1: 13.0})
    assert p.diffs == (2.0,) and p.mean == 2.0 and p.n == 1
    assert math.isnan(p.t_low) and math.isnan(p.t_high)
    assert math.isnan(p.std)
    assert fmt_interval(p.t_low, p.t_high, p.n) == 'undefined (n=1)'
    assert fmt_paired(p) == '+2.00 (1)'
    none = paired({0: 1.0}, {1: 2.0})
    assert none.n == 0 and fmt_paired(none) == 'n/a (0)'


def test_bootstrap_interval_is_seeded_and_within_the_data():
    diffs = [1.0, 3.0, -1.0, 2.0]
    low, high = bootstrap_interval(diffs, resamples=2000)
    assert (low, high) == bootstrap_interval(diffs, resamples=2000)
    assert -1.0 <= low < np.mean(diffs) < high <= 3.0
    assert all(math.isnan(v) for v in bootstrap_interval([1.0]))
    p = paired({0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0},
               dict(enumerate(diffs)), resamples=2000)
    assert (p.boot_low, p.boot_high) == (low, high)


def entry(method, seed, miou, tail, classes=(70.0, None), status='ok',
          split='val'):
    """A ``results.json`` run entry."""
    if status != 'ok':
        return dict(method=method, seed=seed, split=split, status=status)
    return dict(method=method, seed=seed, split=split, status='ok',
                score='IoU', classes=['road', 'rider'],
                frequency=[0.9, 0.1],
                bucket_members=dict(head=['road'], tail=['rider']),
                summary=dict(mIoU=miou), buckets=dict(head=80.0, tail=tail),
                per_class=dict(road=classes[0], rider=classes[1]),
                features=dict(fisher=1.0 + seed), train_seconds=10.0)


RUNS = [entry('base', 0, 40.0, 10.0), entry('base', 1, 42.0, 20.0),
        entry('base', 2, 41.0, 15.0),
        entry('sar', 0, 43.0, 12.0, (72.0, 5.0)),
        entry('sar', 1, 44.0, 26.0), entry('sar', 2, 0, 0, status='failed'),
        entry('sar', 0, 1.0, 1.0, split='test')]


def test_aggregate_and_compare_per_method_group_and_key():
    values = collect(RUNS, 'val')
    assert list(values) == ['base', 'sar']
    stats = aggregate(values)
    # the failed seed 2 of sar is not averaged: n = 2
    assert stats['sar']['summary']['mIoU'].n == 2
    assert stats['sar']['summary']['mIoU'].mean == 43.5
    assert stats['base']['summary']['mIoU'].std == pytest.approx(1.0)
    assert stats['base']['buckets']['tail'].std == pytest.approx(5.0)
    assert stats['sar']['per_class']['rider'].n == 1  # one finite value
    assert stats['base']['per_class']['rider'].n == 0
    cmp = compare(values, 'base')
    assert list(cmp) == ['sar']
    assert cmp['sar']['summary']['mIoU'].diffs == (3.0, 2.0)
    assert cmp['sar']['buckets']['tail'].diffs == (2.0, 6.0)
    assert cmp['sar']['per_class']['rider'].n == 0
    assert compare(values, 'missing') == {}


def test_report_of_a_made_up_sweep(tmp_path):
    results = dict(sweep=dict(methods=dict(base='base.py', sar='sar.py'),
                              seeds=[0, 1, 2], splits=['val', 'test'],
                              cfg_options=['train_cfg.max_iters=4']),
                   runs=RUNS)
    files = make_sweep_report(results, str(tmp_path), resamples=500)
    md = open(files['markdown']).read()
    assert '| **base** | 41.00 ± 1.00 (3) | 80.00 ± 0.00 (3) | ' \
        '15.00 ± 5.00 (3) |' in md
    assert '| **sar** | 43.50 ± 0.71 (2) |' in md
    assert 'seed 0: +3.00, seed 1: +2.00 | +2.50 |' in md
    assert 'bootstrap interval' in md
    assert 'seed 2 val: failed' in md
    assert '## Split `test`' in md and '### Summary (`test`)' in md
    # test: only sar seed 0; no reference, so no paired table
    assert 'No paired comparison: the reference base has no result' in md
    for key in ('val_summary', 'val_per_class', 'val_paired',
                'test_summary', 'test_per_class'):
        assert osp.isfile(files[key]), key
    numbers = json.load(open(files['json']))
    assert numbers['val']['stats']['sar']['summary']['mIoU']['n'] == 2
    assert numbers['val']['paired']['sar']['summary']['mIoU']['diffs'] == \
        [3.0, 2.0]
    assert numbers['val']['stats']['base']['per_class']['rider']['mean'] \
        is None
    assert '<table>' in open(files['html']).read()


def test_classes_must_agree():
    other = dict(entry('sar', 0, 1.0, 1.0), classes=['a', 'b'])
    with pytest.raises(ValueError, match='other classes'):
        SweepTables([RUNS[0], other], 'val', ['base', 'sar'])


# ------------------------------------------------------------ tool helpers


def test_split_options_and_method_names():
    parse = sweep_tool.split_options
    assert parse(['val:a.b=1', 'val:c=2'], ['test', 'val']) == \
        {'test': [], 'val': ['a.b=1', 'c=2']}
    for bad in (['val=1'], ['other:a=1'], ['val:nothing']):
        with pytest.raises(SystemExit):
            parse(bad, ['test', 'val'])
    with pytest.raises(SystemExit, match="'test' split again"):
        parse([], ['test', 'val'])
    names = sweep_tool.method_names
    assert names(['a/fcn.py', 'b/sar.py'], None) == ['fcn', 'sar']
    with pytest.raises(SystemExit, match='not unique'):
        names(['a/fcn.py', 'b/fcn.py'], None)
    with pytest.raises(SystemExit):
        names(['a.py'], ['x', 'y'])


def test_method_options_make_a_grid_of_one_config():
    """``--method-options NAME:KEY=VALUE``: the same config under several
    names, each run with its own options (after the sweep's, before the
    seed), and its own final checkpoint and config hash."""
    parse = sweep_tool.method_options
    assert parse(['b:x=1', 'b:y=2'], ['a', 'b']) == {'a': [], 'b': ['x=1',
                                                                 'y=2']}
    for bad in (['b=1'], ['c:x=1'], ['b:nothing'], ['b:randomness.seed=3']):
        with pytest.raises(SystemExit):
            parse(bad, ['a', 'b'])
    args = sweep_tool.parse_args([
        BASELINE, BASELINE, '--names', 'short', 'long', '--seeds', '0', '1',
        '--work-dir', '/tmp/grid', '--cfg-options', 'model.decode_head.'
        'channels=32', '--method-options', 'short:train_cfg.max_iters=2'])
    runs = sweep_tool.plan(args)
    assert [(r.method, r.seed) for r in runs] == [
        ('short', 0), ('long', 0), ('short', 1), ('long', 1)]
    short = runs[0]
    assert short.options == ['model.decode_head.channels=32',
                             'train_cfg.max_iters=2', 'randomness.seed=0']
    assert runs[1].options == ['model.decode_head.channels=32',
                               'randomness.seed=0']
    assert osp.basename(short.final) == 'iter_2.pth'
    assert osp.basename(runs[1].final) != 'iter_2.pth'
    assert short.config_hash != runs[1].config_hash


def test_final_checkpoint_name_from_the_config():
    name = sweep_tool.final_checkpoint_name
    assert name(Config(dict(
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=40),
        default_hooks=dict(checkpoint=dict(by_epoch=False))))) == \
        'iter_40.pth'
    assert name(Config(dict(
        train_cfg=dict(by_epoch=True, max_epochs=3),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook'))))) == \
        'epoch_3.pth'
    with pytest.raises(SystemExit):
        name(Config(dict(train_cfg=dict(type='IterBasedTrainLoop',
                                        max_iters=4))))  # by_epoch hook


def test_parallelism_fills_the_cpus(monkeypatch):
    monkeypatch.setattr(os, 'cpu_count', lambda: 8)
    assert sweep_tool.parallelism(None, None, 2) == (2, 4)
    assert sweep_tool.parallelism(None, 2, 10) == (4, 2)
    assert sweep_tool.parallelism(3, None, 10) == (3, 2)
    assert sweep_tool.parallelism(None, None, 20) == (8, 1)


# ------------------------------------------------------------ end to end


def sweep_command(work, opts, *extra):
    return [TOOL, BASELINE, SAR, '--names', 'baseline', 'sar', '--seeds',
            '0', '1', '--work-dir', work, '--jobs', '2', '--threads', '1',
            '--cfg-options'] + cli_options(opts) + list(extra)


def mtimes(work):
    return {(m, s): os.stat(osp.join(work, m, f'seed{s}',
                                     'iter_4.pth')).st_mtime_ns
            for m in ('baseline', 'sar') for s in (0, 1)}


def by_run(results, split='test'):
    return {(r['method'], r['seed']): r for r in results['runs']
            if r['split'] == split}


def check_first_sweep(work, out):
    assert '[sweep] 4 runs, 8 steps to do, 2 at once x 1 threads' in out
    assert '[sweep] 8/8 ' in out and 'ETA' in out
    results = json.load(open(osp.join(work, 'results.json')))
    runs = by_run(results)
    assert set(runs) == {(m, s) for m in ('baseline', 'sar') for s in (0, 1)}
    for (method, seed), run in runs.items():
        assert run['status'] == 'ok', run
        assert run['checkpoint'] == osp.join(work, method, f'seed{seed}',
                                             'iter_4.pth')
        assert run['train_seconds'] > 0 and run['eval_seconds'] > 0
        numbers = [run['summary'][k] for k in ('mIoU', 'mAcc', 'aAcc')] + \
            list(run['buckets'].values()) + [run['features']['fisher']]
        assert all(np.isfinite(numbers)), run
        assert set(run['buckets']) == {'head', 'body', 'tail'}
        assert list(run['per_class']) == [f'c{k}' for k in range(8)]
    report = osp.join(work, 'report')
    md = open(osp.join(report, 'report.md')).read()
    assert '±' in md and 'Paired differences against baseline' in md
    for name in ('report.html', 'test_summary.png', 'test_per_class.png',
                 'test_paired.png'):
        assert osp.isfile(osp.join(report, name)), name
    # the report's numbers are the statistics of results.json's
    numbers = json.load(open(osp.join(report, 'report.json')))['test']
    for method in ('baseline', 'sar'):
        values = [runs[(method, s)]['summary']['mIoU'] for s in (0, 1)]
        stat = numbers['stats'][method]['summary']['mIoU']
        assert stat['n'] == 2 and stat['mean'] == pytest.approx(
            np.mean(values))
        assert stat['std'] == pytest.approx(np.std(values, ddof=1))
    assert numbers['paired']['sar']['summary']['mIoU']['diffs'] == \
        pytest.approx([runs[('sar', s)]['summary']['mIoU'] -
                       runs[('baseline', s)]['summary']['mIoU']
                       for s in (0, 1)])
    return results


def test_sweep_trains_skips_resumes_and_reports_failures(tmp_path):
    data, work = str(tmp_path / 'data'), str(tmp_path / 'sweep')
    opts = tiny_options(data)
    opts.update({'train_cfg.max_iters': 4, 'train_cfg.val_begin': 100,
                 'default_hooks.checkpoint.interval': 2,
                 'default_hooks.checkpoint.max_keep_ckpts': 2})
    # the data set once, before the parallel runs would each write it
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(BASELINE)
    cfg.merge_from_dict(opts)
    DATASETS.build(cfg.train_dataloader.dataset)

    out = run_tool(sweep_command(work, opts), tmp_path)
    first = check_first_sweep(work, out)
    trained = mtimes(work)

    # the same command again: nothing is trained or evaluated again
    out = run_tool(sweep_command(work, opts), tmp_path)
    assert '4 runs, 0 steps to do' in out and 'start ' not in out
    assert out.count('[sweep] skip train') == 4
    assert mtimes(work) == trained
    assert by_run(json.load(open(osp.join(work, 'results.json')))) == \
        by_run(first)

    # a lost final checkpoint: that run alone resumes and is re-evaluated
    os.remove(osp.join(work, 'sar', 'seed1', 'iter_4.pth'))
    out = run_tool(sweep_command(work, opts), tmp_path)
    assert '4 runs, 2 steps to do' in out
    assert out.count('start train') == 1 and out.count('start eval') == 1
    assert 'start train sar seed1 (resume from iter_2.pth)' in out
    after = mtimes(work)
    assert after[('sar', 1)] != trained[('sar', 1)]
    assert {k: v for k, v in after.items() if k != ('sar', 1)} == \
        {k: v for k, v in trained.items() if k != ('sar', 1)}
    runs = by_run(json.load(open(osp.join(work, 'results.json'))))
    assert runs[('sar', 1)]['record'] != by_run(first)[('sar', 1)]['record']
    assert runs[('sar', 0)] == by_run(first)[('sar', 0)]

    # failures: a run without its final checkpoint under --eval-only, and
    # a split whose data does not exist; the others are still reported
    os.remove(osp.join(work, 'baseline', 'seed1', 'iter_4.pth'))
    proc = subprocess.run(
        [sys.executable] + sweep_command(
            work, opts, '--eval-only', '--splits', 'test', 'broken',
            '--split-options',
            'broken:test_dataloader.dataset.data_prefix.img_path=nowhere'),
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert 'start train' not in out
    assert 'baseline seed1: not trained (no iter_4.pth; --eval-only)' in out
    log = osp.join(work, 'sar', 'seed0', 'eval_broken.log')
    assert f'eval on broken failed: exit status 1 (log: {log})' in out
    assert 'nowhere' in open(log).read()
    results = json.load(open(osp.join(work, 'results.json')))
    val = by_run(results)
    assert val[('baseline', 1)]['status'] == 'failed'
    assert [val[k]['status'] for k in sorted(val)].count('ok') == 3
    assert {r['status'] for r in by_run(results, 'broken').values()} == \
        {'failed'}
    md = open(osp.join(work, 'report', 'report.md')).read()
    assert 'No evaluation on `broken` succeeded.' in md
    assert 'seed 1 test: failed' in md
    summary = md.split('### Summary (`test`)')[1].splitlines()
    row = next(line for line in summary if line.startswith('| **baseline'))
    assert row.split('|')[2].strip().endswith('(1)')  # mIoU over 1 seed


# ------------------------------------------------------------ config edits


def test_config_hash_is_the_resolved_content(tmp_path):
    """The hash of the config as the run loads it: the same for the same
    content (wherever the file is and whatever its work_dir), another when
    a field or an option changes; sets and functions hash the same in every
    process."""
    def hash_of(path, options=()):
        return sweep_tool.config_hash(sweep_tool.resolved_config(
            Config.fromfile(path), list(options)))

    first = tmp_path / 'a' / 'derived.py'
    first.parent.mkdir()
    first.write_text(f'_base_ = {BASELINE!r}\nwork_dir = "somewhere"\n')
    same = tmp_path / 'b.py'
    same.write_text(f'_base_ = {BASELINE!r}\n# only a comment differs\n')
    assert hash_of(str(first)) == hash_of(str(same)) == hash_of(BASELINE)
    assert hash_of(BASELINE, ['randomness.seed=1']) != hash_of(BASELINE)
    assert hash_of(BASELINE, ['model.decode_head.channels=32']) == \
        hash_of(str(same), ['model.decode_head.channels=32'])
    same.write_text(f'_base_ = {BASELINE!r}\n'
                    'model = dict(decode_head=dict(channels=32))\n')
    assert hash_of(str(same)) != hash_of(BASELINE)
    assert sweep_tool._canonical({'s': {'b', 'a'}, 'f': os.path.join}) == \
        {'s': ['a', 'b'], 'f': '<posixpath.join>'}


def test_config_change_of_a_run_dir(tmp_path):
    """No state and no checkpoint: nothing to compare; a state with
    another hash, without a hash, or checkpoints without a state: changed,
    naming the config."""
    run = sweep_tool.Run('m', '/configs/m.py', 0, str(tmp_path), [],
                         str(tmp_path / 'iter_4.pth'), config_hash='a' * 64)
    state = tmp_path / sweep_tool.STATE_FILE
    assert sweep_tool.config_change(run) is None
    (tmp_path / 'iter_2.pth').write_bytes(b'old')
    assert 'no sweep_run.json recording the config' in \
        sweep_tool.config_change(run)
    state.write_text(json.dumps(dict(config=run.config, options=[],
                                     sessions=[])))
    why = sweep_tool.config_change(run)
    assert why.startswith('config changed since the run: /configs/m.py')
    assert 'records no config hash' in why
    state.write_text(json.dumps(dict(config=run.config, options=[],
                                     config_hash='b' * 64, sessions=[])))
    assert sweep_tool.config_change(run) == (
        'config changed since the run: /configs/m.py (resolved config '
        f'sha256 {"b" * 12} then, {"a" * 12} now)')
    assert not sweep_tool.trained(run)
    stale = sweep_tool.set_aside(run)
    assert stale == str(tmp_path / f'stale_{"b" * 12}')
    assert sorted(os.listdir(stale)) == ['iter_2.pth', 'sweep_run.json']
    assert sweep_tool.config_change(run) is None  # nothing left there


def test_sweep_retrains_a_run_whose_config_was_edited(tmp_path):
    """Sweep, edit a model field of the config, sweep again: the run is
    retrained from scratch (its old checkpoints set aside, the output
    naming the config), evaluated again, and reported from the new run;
    --eval-only after another edit and --report-only with an old state
    file without a hash report the run as not done, saying why."""
    import torch
    data, work = str(tmp_path / 'data'), str(tmp_path / 'sweep')
    config = tmp_path / 'configs' / 'edited.py'
    config.parent.mkdir()

    def write_config(channels):
        config.write_text(f'_base_ = {BASELINE!r}\nmodel = dict(decode_head='
                          f'dict(channels={channels}))\n')

    opts = tiny_options(data)
    opts.update({'train_cfg.max_iters': 2, 'train_cfg.val_begin': 100,
                 'default_hooks.checkpoint.interval': 2})
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(BASELINE)
    cfg.merge_from_dict(opts)
    DATASETS.build(cfg.train_dataloader.dataset)
    command = [TOOL, str(config), '--seeds', '0', '--work-dir', work,
               '--jobs', '1', '--threads', '1',
               '--cfg-options'] + cli_options(opts)
    run_dir = osp.join(work, 'edited', 'seed0')
    final = osp.join(run_dir, 'iter_2.pth')

    def head_channels():
        state = torch.load(final, map_location='cpu', weights_only=False)
        return state['state_dict']['decode_head.conv_seg.weight'].shape[1]

    def result():
        results = json.load(open(osp.join(work, 'results.json')))
        return by_run(results)[('edited', 0)]

    write_config(64)
    run_tool(command, tmp_path)
    first = result()
    assert first['status'] == 'ok' and head_channels() == 64
    first_hash = json.load(open(osp.join(run_dir, 'sweep_run.json'))).get(
        'config_hash')

    write_config(32)
    out = run_tool(command, tmp_path)
    assert 'skip train' not in out
    assert '1 runs, 2 steps to do' in out
    assert f'config changed since the run: {config}' in out
    assert first['config_hash'] == first_hash
    assert 'start train edited seed0 (scratch)' in out
    assert 'start eval edited seed0 on test' in out
    stale = osp.join(run_dir, f'stale_{first_hash[:12]}')
    assert f'its checkpoints moved to {stale}' in out
    assert osp.isfile(osp.join(stale, 'iter_2.pth'))
    assert head_channels() == 32  # the checkpoint of the edited config
    second = result()
    assert second['status'] == 'ok'
    assert second['config_hash'] not in (first_hash, None)
    assert second['record'] != first['record']
    done = json.load(open(osp.join(run_dir, 'eval_test', 'sweep_eval.json')))
    assert second['record'] == done['record']
    from sar_plugin.report.sweep import record_numbers
    assert second['summary'] == record_numbers(done['record'])['summary']

    # unchanged: done
    out = run_tool(command, tmp_path)
    assert '1 runs, 0 steps to do' in out and 'start ' not in out

    # edited again, --eval-only: not evaluated, reported as not trained
    write_config(16)
    proc = subprocess.run([sys.executable] + command + ['--eval-only'],
                          cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert 'start ' not in out
    assert f'not trained with its config (config changed since the run: ' \
        f'{config}' in out
    assert result()['status'] == 'failed'
    assert head_channels() == 32  # nothing moved or trained

    # a state file of an older sweep (no hash) counts as changed
    write_config(32)
    state_path = osp.join(run_dir, 'sweep_run.json')
    state = json.load(open(state_path))
    del state['config_hash']
    json.dump(state, open(state_path, 'w'))
    proc = subprocess.run([sys.executable] + command + ['--report-only'],
                          cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    entry = result()
    assert entry['status'] == 'missing'
    assert entry['error'].startswith(f'config changed since the run: {config}')
    assert 'records no config hash' in entry['error']
    assert 'records no config hash' in out


def test_family_table_of_a_made_up_sweep(tmp_path, capsys):
    """tools/analysis/family_table.py: mean ± std, the paired difference to
    the reference with its t interval, a missing seed shown as such and
    exit status 1; an unknown method is named."""
    spec = importlib.util.spec_from_file_location(
        'family_table', osp.join(REPO_ROOT, 'tools', 'analysis',
                                 'family_table.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    path = tmp_path / 'results.json'
    path.write_text(json.dumps(dict(
        sweep=dict(methods=dict(base='a.py', sar='b.py'), seeds=[0, 1, 2]),
        runs=RUNS)))
    assert tool.main([str(path), '--split', 'val']) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ('| method | mIoU | head | tail | Fisher ratio | '
                        'mIoU − base [95% t] | better in |')
    assert lines[2] == ('| base | 41.00 ± 1.00 | 80.00 ± 0.00 | '
                        '15.00 ± 5.00 | 2.000 ± 1.000 |  |  |')
    # sar: seeds 0 and 1 only; differences +3, +2 -> mean 2.5, t(1)
    half = 12.706204736174707 * math.sqrt(0.5) / math.sqrt(2)
    assert lines[3] == (
        f'| sar | 43.50 ± 0.71 (n=2) | 80.00 ± 0.00 (n=2) | '
        f'19.00 ± 9.90 (n=2) | 1.500 ± 0.707 (n=2) | '
        f'+2.50 [{2.5 - half:+.2f}, +{2.5 + half:.2f}] | 2/2 |'
        .replace('[-', '[−'))
    with pytest.raises(SystemExit, match="'other' is not a method"):
        tool.main([str(path), '--methods', 'base', 'other'])
