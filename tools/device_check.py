"""Check the plug-in on this machine's device and write one report.

Run it on a fresh machine (a GPU one: ``--device cuda``; it also runs with
``--device cpu``); it writes ``device_check.json`` and ``device_check.md``
(and the logs of every part) under ``--out``. Parts, each recording its
status (passed, failed or skipped), wall time and errors without stopping
the others:

- ``environment``: Python, torch, CUDA, cuDNN, the device, and which of
  mmengine, mmcv (with its compiled ops), mmseg and sar_plugin import;
- ``tests``: ``pytest tests/test_devices.py -k <device>`` (every feature
  loss, the kernels, an anchor head and a training step against float64
  references; the CUDA-only checks), with pass/fail/skip counts;
- ``loss``: ``benchmarks/run.py loss`` on the device, K = 19 and 150, for
  each dtype (SARLoss against the reference-style pull and the floor);
- ``train``: ``benchmarks/run.py train`` of the CamVid and Cityscapes
  DeepLabV3+ SAR configs against their plain versions (time, peak memory);
  needs mmseg (an mmcv build with ops), else skipped with the reason;
- ``demo``: ``tools/train.py`` on the synthetic SAR demo with ``--amp``,
  its log read for finite losses and for the gate opening (a non-zero
  ``decode.loss_sar_pull``); needs mmseg likewise.

The exit code is 1 when a part failed. Everything runs in subprocesses of
this Python; nothing needs a package index or the network. On a GPU machine
the defaults take a few minutes; ``--tiny`` shrinks every part (for the
test of this tool on the CPU).

Example::

    python tools/device_check.py --device cuda --out work_dirs/device_check
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import platform
import re
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PARTS = ('environment', 'tests', 'loss', 'train', 'demo')
TRAIN_CONFIGS = {
    'camvid': 'configs/camvid/sar_deeplabv3plus_r50-d8_4xb4-20k_'
              'camvid-360x480.py',
    'cityscapes': 'configs/cityscapes/sar_deeplabv3plus_r50-d8_4xb2-80k_'
                  'cityscapes-512x1024.py',
}
DEMO_CONFIG = 'configs/demo/sar_fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py'
PULL_KEY = 'decode.loss_sar_pull'
NO_MMSEG = 'mmseg does not import here (no mmcv build with ops for this ' \
    'torch?): see docs/gpu.md'

# imported one at a time in a child process, a JSON line after each, so
# that a crash (an mmcv built for another torch) still names the module
IMPORT_PROBE = r'''
import importlib, json, sys
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
        out = dict(ok=True, version=getattr(module, '__version__', None))
        if name == 'sar_plugin':
            out['mmseg_level'] = hasattr(module, 'enable_safe_loading')
    except BaseException as err:
        out = dict(ok=False, error=f'{type(err).__name__}: {err}')
    print(json.dumps(dict(name=name, **out)), flush=True)
'''
MODULES = ('torch', 'mmengine', 'mmcv', 'mmcv.ops', 'mmseg', 'sar_plugin')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cuda',
                        help='the device to check (default: cuda)')
    parser.add_argument('--out', default='work_dirs/device_check',
                        help='folder of the report (device_check.json, '
                        'device_check.md) and the parts\' logs (default: '
                        'work_dirs/device_check)')
    parser.add_argument('--tiny', action='store_true',
                        help='tiny sizes everywhere (a smoke test of this '
                        'tool; the numbers mean nothing)')
    parser.add_argument('--skip', nargs='+', default=[],
                        choices=[p for p in PARTS if p != 'environment'],
                        help='parts to leave out (recorded as skipped)')
    parser.add_argument('--dtypes', nargs='+', default=None,
                        choices=['float32', 'float16', 'bfloat16'],
                        help='dtypes of the loss benchmark (default: float32 '
                        'float16 bfloat16 on CUDA, float32 bfloat16 on the '
                        'CPU)')
    parser.add_argument('--demo-iters', type=int, default=None,
                        help='iterations of the demo run (default: 200, 4 '
                        'with --tiny)')
    parser.add_argument('--timeout', type=int, default=480,
                        help='seconds each subprocess may take before it is '
                        'stopped and its part failed (default: 480)')
    return parser.parse_args(argv)


# ----------------------------------------------------------------- running
def run(cmd, log_path, timeout, env=None):
    """Run ``cmd`` in the repository root, its output to ``log_path``.

    Returns:
        dict: ``returncode`` (None on a timeout), ``seconds``, ``command``,
        ``log`` and the output's ``tail``.
    """
    start = time.time()
    with open(log_path, 'w') as log:
        log.write('$ ' + ' '.join(cmd) + '\n')
        log.flush()
        try:
            proc = subprocess.run(cmd, cwd=REPO, stdout=log,
                                  stderr=subprocess.STDOUT, timeout=timeout,
                                  env=env)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = None
    with open(log_path) as f:
        tail = f.read()[-3000:]
    return dict(command=' '.join(cmd), returncode=code,
                seconds=round(time.time() - start, 2),
                log=osp.basename(log_path), tail=tail)


def failure(result, what):
    """The error message of a finished :func:`run`, or None."""
    if result['returncode'] is None:
        return f'{what} timed out (see {result["log"]})'
    if result['returncode'] != 0:
        last = [line for line in result['tail'].splitlines() if line.strip()]
        return (f'{what} exited with {result["returncode"]} (see '
                f'{result["log"]}): {last[-1] if last else ""}')
    return None


# ------------------------------------------------------------------- parts
def part_environment(args, report):
    import torch
    env = dict(python=sys.version.split()[0], platform=platform.platform(),
               executable=sys.executable, torch=torch.__version__,
               torch_cuda=torch.version.cuda,
               cuda_available=torch.cuda.is_available(),
               cpu_count=os.cpu_count())
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(device_count=torch.cuda.device_count(),
                   device_name=props.name,
                   capability='.'.join(map(str, (props.major,
                                                 props.minor))),
                   memory_gib=round(props.total_memory / 2**30, 1),
                   cudnn=torch.backends.cudnn.version(),
                   bf16_supported=torch.cuda.is_bf16_supported())
    try:
        smi = subprocess.run(
            ['nvidia-smi', '--query-gpu=name,driver_version,memory.total',
             '--format=csv,noheader'], capture_output=True, text=True,
            timeout=60)
        if smi.returncode == 0:
            env['nvidia_smi'] = smi.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    proc = subprocess.run([sys.executable, '-c', IMPORT_PROBE, *MODULES],
                          cwd=REPO, capture_output=True, text=True,
                          timeout=args.timeout)
    imports = {}
    for line in proc.stdout.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        imports[entry.pop('name')] = entry
    for name in MODULES:  # after a crash: the module it crashed in
        if name not in imports:
            imports[name] = dict(
                ok=False, error=f'the import probe died (exit code '
                f'{proc.returncode}) before or while importing it: '
                f'{proc.stderr.strip()[-300:]}')
            break
    env['imports'] = imports
    report['mmseg_ok'] = all(imports.get(n, {}).get('ok') for n in
                             ('mmengine', 'mmcv', 'mmcv.ops', 'mmseg',
                              'sar_plugin'))
    report['environment'] = env
    if args.device == 'cuda' and not torch.cuda.is_available():
        return dict(error='--device cuda, but torch.cuda.is_available() is '
                    f'False (torch {torch.__version__}, built for CUDA '
                    f'{torch.version.cuda})')
    missing = [n for n in ('torch', 'sar_plugin')
               if not imports.get(n, {}).get('ok')]
    if missing:
        return dict(error=f'{", ".join(missing)} does not import: '
                    + '; '.join(imports[n].get('error', '?')
                                for n in missing if n in imports))
    return {}


def junit_counts(path):
    """``(counts, failed test ids, skip reasons)`` of a JUnit XML file."""
    root = ET.parse(path).getroot()
    counts = dict(passed=0, failed=0, skipped=0)
    failed, reasons = [], {}
    for case in root.iter('testcase'):
        name = f'{case.get("classname", "")}::{case.get("name")}'
        if case.find('failure') is not None or \
                case.find('error') is not None:
            counts['failed'] += 1
            failed.append(name)
        elif case.find('skipped') is not None:
            counts['skipped'] += 1
            reason = case.find('skipped').get('message', '')
            reasons[reason] = reasons.get(reason, 0) + 1
        else:
            counts['passed'] += 1
    return counts, failed, reasons


def part_tests(args, report):
    xml = osp.join(args.out, 'tests.xml')
    cmd = [sys.executable, '-m', 'pytest', 'tests/test_devices.py', '-k',
           args.device, '-q', '-rs', '-p', 'no:cacheprovider',
           f'--junitxml={xml}']
    result = run(cmd, osp.join(args.out, 'tests.log'), args.timeout)
    out = dict(command=result['command'], log=result['log'])
    if not osp.exists(xml):
        out['error'] = failure(result, 'pytest') or 'pytest wrote no report'
        return out
    counts, failed, reasons = junit_counts(xml)
    out.update(counts, failed_tests=failed[:50], skip_reasons=reasons)
    error = failure(result, 'pytest')
    if error or counts['failed']:
        out['error'] = error or f'{counts["failed"]} test(s) failed'
    elif not counts['passed']:
        out['status'] = 'skipped'
        out['reason'] = '; '.join(reasons) or 'no test ran'
    return out


def bench_cmd(args, out_json, mode_args):
    """``benchmarks/run.py`` as a script (its directory on its own
    ``sys.path``, which is how it finds ``sar_bench``)."""
    return [sys.executable, osp.join(REPO, 'benchmarks', 'run.py'),
            '--device', args.device, '--out', out_json, *mode_args]


def part_loss(args, report):
    dtypes = args.dtypes or (['float32', 'float16', 'bfloat16']
                             if args.device == 'cuda'
                             else ['float32', 'bfloat16'])
    mode = ['loss', '--classes', '19', '150', '--dtypes', *dtypes]
    if args.tiny:  # (C >= K - 1 for HAL's simplex anchors)
        mode += ['--shape', '1', '160', '4', '8', '--rounds', '1',
                 '--nca-samples', '0']
    out_json = osp.join(args.out, 'loss_benchmark.json')
    result = run(bench_cmd(args, out_json, mode),
                 osp.join(args.out, 'loss_benchmark.log'), args.timeout)
    out = dict(command=result['command'], log=result['log'])
    error = failure(result, 'benchmarks/run.py loss')
    if error:
        out['error'] = error
        return out
    with open(out_json) as f:
        bench = json.load(f)
    out['shape'] = bench.get('shape')
    out['tables'] = [
        dict(classes=t['classes'], dtype=t['dtype'],
             rows=[{key: row.get(key) for key in
                    ('loss', 'ms', 'x_floor', 'peak_mib', 'x_reference',
                     'mem_x_reference') if row.get(key) is not None}
                   for row in t['rows']])
        for t in bench['tables']]
    out['markdown'] = osp.basename(osp.splitext(out_json)[0] + '.md')
    return out


def part_train(args, report):
    if not report.get('mmseg_ok'):
        return dict(status='skipped', reason=NO_MMSEG)
    out = dict(configs={})
    errors = []
    for name, config in TRAIN_CONFIGS.items():
        mode = ['train', config]
        if args.tiny:  # (2 images: the ASPP pooling branch's BN needs 2)
            mode += ['--size', '64', '64', '--batch-size', '2', '--rounds',
                     '1', '--warmup', '0', '--variants', 'anchors']
        else:
            mode += ['--rounds', '10', '--warmup', '3']
        out_json = osp.join(args.out, f'train_benchmark_{name}.json')
        result = run(bench_cmd(args, out_json, mode),
                     osp.join(args.out, f'train_benchmark_{name}.log'),
                     args.timeout)
        entry = dict(config=config, command=result['command'],
                     log=result['log'], seconds=result['seconds'])
        error = failure(result, f'benchmarks/run.py train ({name})')
        if error:
            entry['error'] = error
            errors.append(error)
        else:
            with open(out_json) as f:
                bench = json.load(f)
            entry.update(batch_size=bench.get('batch_size'),
                         size=bench.get('size'),
                         rows=[{key: row.get(key) for key in
                                ('variant', 's_per_iter', 'x_plain',
                                 'peak_mib', 'mem_x_plain')}
                               for row in bench['rows']])
        out['configs'][name] = entry
    if errors:
        out['error'] = '; '.join(errors)
    return out


def read_train_log(work_dir):
    """Per logged training iteration, its scalars: from MMEngine's
    ``vis_data/scalars.json`` (full precision) when there is one, else
    from the text log's ``Iter(train)`` lines.

    Returns:
        Tuple[list, str]: ``[{'iter': i, name: value...}]`` and the file
        read (None when there is none).
    """
    scalars = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                        'scalars.json')))
    if scalars:
        records = []
        with open(scalars[-1]) as f:
            for line in f:
                line = line.strip()
                if line:
                    record = json.loads(line)
                    if 'iter' in record and any('loss' in k for k in record):
                        records.append(record)
        return records, scalars[-1]
    logs = sorted(glob.glob(osp.join(work_dir, '*', '*.log')))
    if not logs:
        return [], None
    records = []
    pattern = re.compile(r'Iter\(train\)\s*\[\s*(\d+)/\s*\d+\]')
    with open(logs[-1]) as f:
        for line in f:
            match = pattern.search(line)
            if not match:
                continue
            record = {'iter': int(match.group(1))}
            for key, value in re.findall(r'([\w.]+): (\S+)', line):
                try:
                    record[key] = float(value)
                except ValueError:
                    pass
            records.append(record)
    return records, logs[-1]


def part_demo(args, report):
    if not report.get('mmseg_ok'):
        return dict(status='skipped', reason=NO_MMSEG)
    iters = args.demo_iters or (4 if args.tiny else 200)
    work_dir = osp.join(args.out, 'demo')
    options = [f'train_cfg.max_iters={iters}',
               f'train_cfg.val_begin={iters + 1}',  # no validation
               'default_hooks.logger.interval=1',
               f'default_hooks.checkpoint.interval={iters}']
    if args.tiny:  # no worker processes to start
        options += ['train_dataloader.num_workers=0',
                    'train_dataloader.persistent_workers=False']
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), DEMO_CONFIG,
           '--work-dir', work_dir, '--amp', '--cfg-options', *options]
    env = dict(os.environ)
    if args.device == 'cpu':  # MMEngine trains on CUDA whenever it sees it
        env['CUDA_VISIBLE_DEVICES'] = ''
    result = run(cmd, osp.join(args.out, 'demo.log'), args.timeout, env=env)
    out = dict(command=result['command'], log=result['log'], iters=iters,
               amp=True)
    error = failure(result, 'tools/train.py')
    with open(osp.join(args.out, 'demo.log')) as f:
        wrappers = re.findall(r"type='(\w*OptimWrapper)'", f.read())
    out['optim_wrapper'] = wrappers[-1] if wrappers else None
    records, source = read_train_log(work_dir)
    out['log_read'] = osp.relpath(source, args.out) if source else None
    losses = {}
    for record in records:
        for key, value in record.items():
            if 'loss' in key:
                losses.setdefault(key, []).append(value)
    out['iterations_logged'] = len(records)
    out['loss_terms'] = sorted(losses)
    out['last'] = {k: v[-1] for k, v in sorted(losses.items())}
    out['all_losses_finite'] = bool(losses) and all(
        math.isfinite(v) for values in losses.values() for v in values)
    pulls = losses.get(PULL_KEY, [])
    opened = [r['iter'] for r in records if r.get(PULL_KEY, 0) != 0]
    out['gate_opened'] = bool(opened)
    out['gate_first_open_iter'] = opened[0] if opened else None
    out['pull_max'] = max(pulls) if pulls else None
    if error:
        out['error'] = error
    elif not records:
        out['error'] = 'the run logged no training iteration'
    elif not pulls:
        out['error'] = f'the log has no {PULL_KEY}: is SAR in the model?'
    elif not out['all_losses_finite']:
        out['error'] = 'a logged loss is not finite'
    elif len(records) < iters:
        out['error'] = f'{len(records)} of {iters} iterations logged'
    return out


RUNNERS = dict(environment=part_environment, tests=part_tests,
               loss=part_loss, train=part_train, demo=part_demo)


# ------------------------------------------------------------------ report
def markdown(report):
    env = report.get('environment', {})
    lines = [f'# Device check: {report["device"]}', '',
             f'{report["started"]}, `{report["command"]}`'
             + (' (tiny sizes: the numbers mean nothing)'
                if report['tiny'] else ''), '',
             f'Overall: **{report["status"]}**', '',
             '| part | status | seconds | notes |', '|---|---|---|---|']
    for name, part in report['parts'].items():
        note = part.get('error') or part.get('reason') or ''
        if name == 'tests' and 'passed' in part:
            note = (f'{part["passed"]} passed, {part["failed"]} failed, '
                    f'{part["skipped"]} skipped' + (f'; {note}'
                                                    if note else ''))
        if name == 'demo' and 'gate_opened' in part:
            finite = 'finite' if part['all_losses_finite'] else 'NOT finite'
            gate = (f'opened at iteration {part["gate_first_open_iter"]}'
                    if part['gate_opened'] else 'never opened')
            note = (f'{part["iterations_logged"]} iterations with '
                    f'{part.get("optim_wrapper")}, losses {finite}, gate '
                    f'{gate}' + (f'; {note}' if note else ''))
        lines.append(f'| {name} | {part["status"]} | {part["seconds"]} | '
                     f'{note.replace("|", "/")} |')
    lines += ['', '## Environment', '']
    for key, value in env.items():
        if key != 'imports':
            lines.append(f'- {key}: {value}')
    for name, entry in env.get('imports', {}).items():
        version = f' ({entry["version"]})' if entry.get('version') else ''
        state = (f'imports{version}' if entry.get('ok')
                 else f'does not import: {entry.get("error")}')
        lines.append(f'- `import {name}`: {state}')
    tests = report['parts'].get('tests', {})
    if tests.get('failed_tests'):
        lines += ['', '## Failed tests', '']
        lines += [f'- `{t}`' for t in tests['failed_tests']]
    if tests.get('skip_reasons'):
        lines += ['', '## Skipped tests', '']
        lines += [f'- {n}: {r}' for r, n in tests['skip_reasons'].items()]
    loss = report['parts'].get('loss', {})
    if loss.get('tables'):
        lines += ['', f'## Loss benchmark (features {loss.get("shape")})',
                  '', '| K | dtype | loss | ms | × floor | peak MiB | '
                  'reference ÷ SAR time |', '|---|---|---|---|---|---|---|']
        for table in loss['tables']:
            for row in table['rows']:
                lines.append(
                    f'| {table["classes"]} | {table["dtype"]} | '
                    f'{row["loss"]} | {row.get("ms", 0):.2f} | '
                    f'{row.get("x_floor", 0):.2f} | '
                    f'{row.get("peak_mib", 0):.1f} | '
                    + (f'{row["x_reference"]:.2f}' if 'x_reference' in row
                       else '') + ' |')
    train = report['parts'].get('train', {})
    if train.get('configs'):
        lines += ['', '## Training step: SAR against plain', '',
                  '| config | variant | s/iter | × plain | peak MiB | '
                  'mem × plain |', '|---|---|---|---|---|---|']
        for name, entry in train['configs'].items():
            for row in entry.get('rows', []):
                lines.append(
                    f'| {name} ({entry.get("batch_size")} × '
                    f'{entry.get("size")}) | {row["variant"]} | '
                    f'{row["s_per_iter"]:.4f} | {row["x_plain"]:.3f} | '
                    f'{row["peak_mib"]:.1f} | {row["mem_x_plain"]:.3f} |')
            if entry.get('error'):
                lines.append(f'| {name} | failed | | | | |')
    demo = report['parts'].get('demo', {})
    if demo.get('last'):
        lines += ['', f'## Demo ({demo["iters"]} iterations, --amp)', '',
                  f'Last logged losses (from {demo["log_read"]}):', '']
        lines += [f'- {k}: {v:.6g}' for k, v in demo['last'].items()]
    lines += ['', 'Logs of every part: the `*.log` files beside this '
              'report.', '']
    return '\n'.join(lines)


def write(report, out):
    with open(osp.join(out, 'device_check.json'), 'w') as f:
        json.dump(report, f, indent=1, default=str)
    with open(osp.join(out, 'device_check.md'), 'w') as f:
        f.write(markdown(report))


def main(argv=None):
    args = parse_args(argv)
    args.out = osp.abspath(args.out)
    os.makedirs(args.out, exist_ok=True)
    report = dict(
        device=args.device, tiny=args.tiny, status='running',
        started=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        command='python tools/device_check.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        parts={})
    for name in PARTS:
        start = time.time()
        print(f'[device_check] {name} ...', flush=True)
        if name in args.skip:
            part = dict(status='skipped', reason='--skip')
        else:
            try:
                part = RUNNERS[name](args, report)
            except Exception as err:  # a part never stops the others
                part = dict(error=f'{type(err).__name__}: {err}',
                            traceback=traceback.format_exc()[-3000:])
            part.setdefault('status', 'failed' if part.get('error')
                            else 'passed')
        part['seconds'] = round(time.time() - start, 1)
        report['parts'][name] = part
        print(f'[device_check] {name}: {part["status"]} '
              f'({part["seconds"]} s)'
              + (f': {part["error"]}' if part.get('error') else ''),
              flush=True)
        write(report, args.out)
    failed = [n for n, p in report['parts'].items()
              if p['status'] == 'failed']
    report['status'] = 'failed' if failed else 'passed'
    report['failed_parts'] = failed
    write(report, args.out)
    print(f'[device_check] report: {osp.join(args.out, "device_check.md")}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
