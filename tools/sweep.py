"""Seed sweep: train every (config, seed), evaluate each final checkpoint,
and report mean ± std over seeds with paired comparisons.

    python tools/sweep.py CONFIG [CONFIG ...] --seeds 0 1 2 \\
        --work-dir work_dirs/sweep [--names baseline sar] \\
        [--cfg-options k=v ...] [--method-options NAME:KEY=VALUE ...] \\
        [--jobs N] [--threads T] \\
        [--splits test val] [--split-options val:KEY=VALUE ...] \\
        [--eval-only | --report-only] [--bootstrap 10000]

One run per (method, seed) in ``DIR/<method>/seed<k>/`` (a
``tools/train.py`` work dir; the seed goes in as
``--cfg-options randomness.seed=<k>``), trained as its own process, up to
``--jobs`` at once with ``--threads`` OMP/MKL threads each (by default
jobs x threads = the CPU count; on a GPU machine the jobs share the
visible GPUs). The final checkpoint of every run (``iter_<max_iters>.pth``
/ ``epoch_<max_epochs>.pth``, not the best on validation) is evaluated with
``tools/test.py`` on every split into ``DIR/<method>/seed<k>/eval_<split>/``,
whose long-tail and feature records give the numbers.

A weight grid is the same config under several names, each with its own
``--method-options NAME:KEY=VALUE`` (added after ``--cfg-options``, before
the seed), e.g.

    python tools/sweep.py CE.py HAL.py HAL.py --names ce hal-0.1 hal-0.3 \\
        --method-options \\
        hal-0.1:model.decode_head.anchor_losses.0.loss_weight=0.1 \\
        hal-0.3:model.decode_head.anchor_losses.0.loss_weight=0.3 ...

Splits: ``test`` is the config's ``test_dataloader`` as it is (most MMSeg
configs set it to the val_dataloader; the CamVid held-out configs set it to
a held-out video). Any other split is that loader changed by its own
``--split-options SPLIT:KEY=VALUE`` (added after ``--cfg-options``), e.g.
the tuning split of a config whose test_dataloader is held out:

    --splits test val --split-options \\
        val:test_dataloader.dataset.data_prefix.img_path=img_dir/val \\
        val:test_dataloader.dataset.data_prefix.seg_map_path=ann_dir/val

Written:

- ``DIR/results.json``: one entry per (method, seed, split);
- ``DIR/report/report.{md,html,json}`` and plots: mean ± sample std (n)
  over seeds per method, bucket and class, and the paired comparison of
  every method with the first (per-seed differences, mean, t interval).

Rerunning the same command does only what is missing: a run whose final
checkpoint is intact is not retrained, an unfinished one resumes from its
newest intact checkpoint, an evaluation of the same checkpoint with the
same options is not redone. Runs and evaluations are keyed by the content
of their resolved config (the config file, its ``_base_`` files and the
``--cfg-options`` merged, as tools/train.py / tools/test.py load it; sha256
in ``sweep_run.json`` / ``sweep_eval.json``): after an edit of a config
that changes it, the runs of that config are retrained from scratch (their
old checkpoints set aside in ``stale_<hash>/``) and evaluated again, and
the progress says ``config changed since the run: CONFIG``; a run dir from
an older sweep, without a recorded hash, counts as changed. Under
``--eval-only`` such a run is reported as not trained with its config, not
evaluated. A failed process does not stop the others;
the sweep then exits with status 1 naming the runs and their logs. The
report shows only what was evaluated (a method's missing seeds lower its
n). Note: SARLoss draws its anchors from ``anchor_seed`` (fixed by
default), so seeds vary weights and data order, not the anchors.
"""
import argparse
import copy
import functools
import glob
import hashlib
import json
import os
import os.path as osp
import re
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

STATE_FILE = 'sweep_run.json'  # in a run dir: what it was trained with
EVAL_FILE = 'sweep_eval.json'  # in an eval dir: what was evaluated


# ---------------------------------------------------------------- plan


@dataclass
class Run:
    """One (method, seed) training run and its evaluations.

    Attributes:
        method: Method name (dir name).
        config: Absolute config path.
        seed: ``randomness.seed``.
        work_dir: ``<sweep dir>/<method>/seed<seed>``.
        options: ``--cfg-options`` of the training (the sweep's, then the
            seed).
        final: Absolute path of the final checkpoint.
        errors: Step (``'train'`` or a split) -> why it failed, with the
            log.
        config_hash: sha256 of the resolved training config
            (:func:`config_hash`).
        eval_hashes: Split -> sha256 of the resolved config of the
            evaluation on it.
    """
    method: str
    config: str
    seed: int
    work_dir: str
    options: List[str]
    final: str
    errors: Dict[str, str] = field(default_factory=dict)
    config_hash: str = ''
    eval_hashes: Dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f'{self.method} seed{self.seed}'

    def eval_dir(self, split: str) -> str:
        return osp.join(self.work_dir, f'eval_{split}')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='+', metavar='CONFIG',
                        help='one config per method; the first is the '
                        'reference of the paired comparisons')
    parser.add_argument('--seeds', nargs='+', type=int, required=True,
                        help='randomness.seed of the runs of every method')
    parser.add_argument('--work-dir', required=True,
                        help='sweep dir: runs in DIR/<method>/seed<k>/, '
                        'DIR/results.json, DIR/report/')
    parser.add_argument('--names', nargs='+',
                        help='method names (default: config file names '
                        'without .py)')
    parser.add_argument('--splits', nargs='+', default=['test'],
                        help="splits to evaluate on (default: test, the "
                        "config's test_dataloader; see Splits above)")
    for flag, metavar, text in (
            ('--cfg-options', 'KEY=VALUE',
             'for every training and evaluation, as in tools/train.py'),
            ('--method-options', 'NAME:KEY=VALUE', 'extra --cfg-options of '
             'the runs of method NAME only (a grid: one config under several '
             '--names)'),
            ('--split-options', 'SPLIT:KEY=VALUE', 'extra --cfg-options of '
             'the evaluations on SPLIT only (see Splits above)')):
        parser.add_argument(flag, nargs='+', default=[], metavar=metavar,
                            help=text)
    parser.add_argument('--jobs', type=int,
                        help='runs at once (default: cpu count / threads, '
                        'at most the runs to do)')
    parser.add_argument('--threads', type=int,
                        help='OMP/MKL threads per run (default: cpu count '
                        '/ jobs)')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--eval-only', action='store_true',
                      help='train nothing; evaluate the final checkpoints '
                      'there are')
    mode.add_argument('--report-only', action='store_true',
                      help='run nothing; results.json and the report from '
                      'the evaluations done')
    parser.add_argument('--confidence', type=float, default=0.95,
                        help='level of the intervals (default: 0.95)')
    parser.add_argument('--bootstrap', type=int, default=0, metavar='N',
                        help='add a percentile bootstrap interval with N '
                        'resamples (0: t interval only)')
    parser.add_argument('--title', help='report title')
    return parser.parse_args(argv)


def method_names(configs: Sequence[str],
                 names: Optional[Sequence[str]]) -> List[str]:
    """``--names`` or the config file names; unique, usable as dir names."""
    if names is None:
        names = [osp.splitext(osp.basename(c))[0] for c in configs]
    elif len(names) != len(configs):
        raise SystemExit(f'--names: {len(names)} names for {len(configs)} '
                         'configs')
    if len(set(names)) != len(names):
        raise SystemExit(f'method names are not unique: {list(names)}; '
                         'give --names')
    from sar_plugin.utils.paths import check_dir_name
    for name in names:
        try:
            check_dir_name(name, 'method name')
        except ValueError as err:
            raise SystemExit(str(err)) from err
    return list(names)


def split_options(items: Sequence[str],
                  splits: Sequence[str]) -> Dict[str, List[str]]:
    """``SPLIT:KEY=VALUE`` items -> split -> ``KEY=VALUE`` list; every
    split but ``test`` must have some, and each must be evaluated."""
    out: Dict[str, List[str]] = OrderedDict((s, []) for s in splits)
    for item in items:
        split, sep, option = item.partition(':')
        if not sep or '=' not in option:
            raise SystemExit(f'--split-options {item!r}: expected '
                             'SPLIT:KEY=VALUE')
        if split not in out:
            raise SystemExit(f'--split-options {item!r}: split {split!r} is '
                             f'not in --splits {list(splits)}')
        out[split].append(option)
    for split, options in out.items():
        if split != 'test' and not options:
            raise SystemExit(
                f'split {split!r} has no --split-options: it would be the '
                "config's test_dataloader, i.e. the 'test' split again")
    return out


def method_options(items: Sequence[str],
                   names: Sequence[str]) -> Dict[str, List[str]]:
    """``NAME:KEY=VALUE`` items -> method name -> ``KEY=VALUE`` list."""
    out: Dict[str, List[str]] = OrderedDict((n, []) for n in names)
    for item in items:
        name, sep, option = item.partition(':')
        if not sep or '=' not in option:
            raise SystemExit(f'--method-options {item!r}: expected '
                             'NAME:KEY=VALUE')
        if name not in out:
            raise SystemExit(f'--method-options {item!r}: method {name!r} '
                             f'is not one of {list(names)}')
        if option.split('=', 1)[0] == 'randomness.seed':
            raise SystemExit(f'--method-options {item!r}: give --seeds')
        out[name].append(option)
    return out


def parse_cfg_options(items: Sequence[str]) -> dict:
    """``KEY=VALUE`` items as ``tools/train.py`` reads them."""
    from mmengine.config import DictAction
    namespace = argparse.Namespace(options={})
    if items:
        DictAction([], 'options')(None, namespace, list(items))
    return namespace.options


def final_checkpoint_name(cfg) -> str:
    """The file name of the last checkpoint the config's training saves
    (MMEngine's ``CheckpointHook`` always saves the last step)."""
    train_cfg = cfg.train_cfg
    hook = dict(cfg.get('default_hooks', {}).get('checkpoint') or {})
    if hook.get('out_dir'):
        raise SystemExit('default_hooks.checkpoint.out_dir is set: the '
                         'sweep expects checkpoints in the run dir')
    by_epoch = hook.get('by_epoch', True)
    template = hook.get('filename_tmpl') or \
        ('epoch_{}.pth' if by_epoch else 'iter_{}.pth')
    epochs = 'max_epochs' in train_cfg or \
        'Epoch' in str(train_cfg.get('type', ''))
    if by_epoch and epochs:
        return template.format(train_cfg['max_epochs'])
    if not by_epoch and 'max_iters' in train_cfg:
        return template.format(train_cfg['max_iters'])
    raise SystemExit(f'cannot tell the final checkpoint of train_cfg='
                     f'{dict(train_cfg)} with a checkpoint hook by_epoch='
                     f'{by_epoch}')


# Top-level fields of a resolved config that do not change what a run
# trains or evaluates (tools/train.py and tools/test.py set work_dir from
# --work-dir).
UNHASHED = ('work_dir', )


def _canonical(value):
    """A JSON form of a config value that is the same in every process: set
    members sorted, classes and functions by their qualified names, memory
    addresses dropped from any other ``repr``."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_canonical(v) for v in value),
                      key=lambda v: json.dumps(v, sort_keys=True))
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    module = getattr(value, '__module__', None)
    qualname = getattr(value, '__qualname__', None)
    if module and qualname and callable(value):
        return f'<{module}.{qualname}>'
    return re.sub(r' at 0x[0-9a-fA-F]+', '', repr(value))


def config_hash(cfg) -> str:
    """sha256 of the canonical JSON of a resolved config, without the
    fields in :data:`UNHASHED`."""
    data = _canonical(cfg.to_dict())
    for key in UNHASHED:
        data.pop(key, None)
    text = json.dumps(data, sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def resolved_config(cfg, options: Sequence[str]):
    """``cfg`` (as ``Config.fromfile`` loads the config; not changed) with
    ``--cfg-options`` merged, as tools/train.py and tools/test.py do before
    adapting it to the machine."""
    cfg = copy.deepcopy(cfg)
    overrides = parse_cfg_options(options)
    if overrides:
        cfg.merge_from_dict(overrides)
    return cfg


def plan(args: argparse.Namespace) -> List[Run]:
    """The runs, seed-major (every method's seed 0 first, so that paired
    results come early), with their final checkpoint from the config and
    the hashes of their resolved training and evaluation configs."""
    from mmengine.config import Config
    if any(o.split('=', 1)[0] == 'randomness.seed' for o in args.cfg_options):
        raise SystemExit('--cfg-options randomness.seed: give --seeds')
    if len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f'--seeds: {args.seeds} repeats a seed')
    if min(args.jobs or 1, args.threads or 1) < 1:
        raise SystemExit('--jobs and --threads must be at least 1')
    names = method_names(args.configs, args.names)
    split_opts = split_options(args.split_options, args.splits)
    method_opts = method_options(args.method_options, names)
    loaded, finals = {}, {}
    for name, config in zip(names, args.configs):
        # the user's own config files: loading them runs their Python
        if config not in loaded:
            loaded[config] = Config.fromfile(osp.abspath(config))
        finals[name] = final_checkpoint_name(
            resolved_config(loaded[config],
                            list(args.cfg_options) + method_opts[name]))
    runs = [Run(name, osp.abspath(config), seed,
                osp.abspath(osp.join(args.work_dir, name, f'seed{seed}')),
                list(args.cfg_options) + method_opts[name] +
                [f'randomness.seed={seed}'],
                osp.abspath(osp.join(args.work_dir, name, f'seed{seed}',
                                     finals[name])))
            for seed in args.seeds
            for name, config in zip(names, args.configs)]
    configs = dict(zip(names, args.configs))
    for run in runs:
        cfg = loaded[configs[run.method]]
        run.config_hash = config_hash(resolved_config(cfg, run.options))
        run.eval_hashes = {
            split: config_hash(resolved_config(cfg, eval_options(run, opts)))
            for split, opts in split_opts.items()}
    return runs


# ---------------------------------------------------------------- state


def read_json(path: str) -> Optional[dict]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_json(path: str, data) -> None:
    """Write atomically (a killed sweep leaves the old file or the new)."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def check_state(run: Run) -> None:
    """Refuse a run dir trained with another config or other options."""
    state = read_json(osp.join(run.work_dir, STATE_FILE))
    if state is not None and (state['config'], state['options']) != \
            (run.config, run.options):
        raise SystemExit(
            f'[sweep] {run.label}: {run.work_dir} was trained with '
            f'{state["config"]} --cfg-options {" ".join(state["options"])}, '
            f'not {run.config} --cfg-options {" ".join(run.options)}; use '
            'another --work-dir or remove that run dir')


def config_change(run: Run) -> Optional[str]:
    """Why what the run dir holds may not have been trained with the run's
    resolved config (its hash differs from the one the run's state file
    records, or none is recorded); None when it was, or when the run dir
    has neither a state file nor checkpoints."""
    state = read_json(osp.join(run.work_dir, STATE_FILE))
    if state is None:
        if not glob.glob(osp.join(run.work_dir, '*.pth')):
            return None
        return (f'config changed since the run: {run.config}? the run dir '
                f'has checkpoints but no {STATE_FILE} recording the config '
                'they were trained with; counted as changed')
    recorded = state.get('config_hash')
    if recorded is None:
        return (f'config changed since the run: {run.config}? the run\'s '
                f'{STATE_FILE} (from an older sweep) records no config hash; '
                'counted as changed')
    if recorded != run.config_hash:
        return (f'config changed since the run: {run.config} (resolved '
                f'config sha256 {recorded[:12]} then, {run.config_hash[:12]} '
                'now)')
    return None


def set_aside(run: Run) -> Optional[str]:
    """Move the checkpoints (and state) of a run trained with another
    config into ``<run dir>/stale_<its hash>/``, so that neither resuming
    nor the final checkpoint can pick them up; return that dir (None when
    there were none)."""
    files = glob.glob(osp.join(run.work_dir, '*.pth'))
    if not files:
        return None
    files += [p for p in (osp.join(run.work_dir, 'last_checkpoint'),
                          osp.join(run.work_dir, STATE_FILE))
              if osp.isfile(p)]
    state = read_json(osp.join(run.work_dir, STATE_FILE)) or {}
    base = osp.join(run.work_dir,
                    f'stale_{(state.get("config_hash") or "unrecorded")[:12]}')
    dest, k = base, 1
    while osp.exists(dest):
        k += 1
        dest = f'{base}_{k}'
    os.makedirs(dest)
    for path in files:
        os.replace(path, osp.join(dest, osp.basename(path)))
    return dest


def trained(run: Run) -> bool:
    """The final checkpoint is there, intact, and trained with the run's
    resolved config."""
    return config_change(run) is None and osp.isfile(run.final) and \
        _intact(run.final, *checkpoint_stamp(run.final))


@functools.lru_cache(maxsize=None)
def _intact(path: str, size: int, mtime_ns: int) -> bool:
    """CRC check of a checkpoint, once per file version."""
    from sar_plugin.utils.resume import checkpoint_problem
    return checkpoint_problem(path) is None


def resume_from(run: Run) -> Optional[str]:
    """The newest intact checkpoint of an unfinished run, if any."""
    from sar_plugin.utils.resume import checkpoint_problem, list_checkpoints
    if not osp.isdir(run.work_dir):
        return None
    return next((p for p in list_checkpoints(run.work_dir)
                 if checkpoint_problem(p) is None), None)


def checkpoint_stamp(path: str) -> List[int]:
    """What tells one checkpoint file from a retrained one."""
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def eval_options(run: Run, options: Sequence[str]) -> List[str]:
    return run.options + list(options)


def evaluated(run: Run, split: str, options: Sequence[str]) -> bool:
    """This checkpoint was evaluated on ``split`` with these options and
    the same resolved config."""
    done = read_json(osp.join(run.eval_dir(split), EVAL_FILE))
    expected = run.eval_hashes.get(split)
    return done is not None and trained(run) and expected is not None and \
        done.get('config_hash') == expected and \
        done['checkpoint'] == run.final and \
        done['stamp'] == checkpoint_stamp(run.final) and \
        done['options'] == eval_options(run, options) and \
        osp.isfile(done['record'])


# ---------------------------------------------------------------- running


def fmt_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f'{seconds} s'
    if seconds < 3600:
        return f'{seconds // 60} min {seconds % 60:02d} s'
    return f'{seconds // 3600} h {seconds % 3600 // 60:02d} min'


def last_line(path: str) -> str:
    """``': <last non-empty line>'`` of a log (often the exception)."""
    with open(path, errors='replace') as f:
        lines = [line.strip() for line in f if line.strip()]
    return f': {lines[-1][:300]}' if lines else ''


class Progress:
    """``[sweep] i/N ...`` lines, flushed, with an ETA from the pace so
    far."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.start = time.time()
        self.lock = threading.Lock()

    def say(self, text: str) -> None:
        with self.lock:
            print(f'[sweep] {text}', flush=True)

    def step(self, text: str) -> None:
        with self.lock:
            self.done += 1
            left = self.total - self.done
            elapsed = time.time() - self.start
            eta = f'ETA {fmt_seconds(elapsed / self.done * left)}' \
                if left else 'last'
            print(f'[sweep] {self.done}/{self.total} {text} ({eta})',
                  flush=True)


class Scheduler:
    """Runs the steps of the runs as subprocesses, ``jobs`` runs at once.

    Args:
        jobs: Runs at once.
        threads: OMP/MKL threads of each process.
        progress: Where the events go.
        split_opts: split -> its ``--cfg-options``.
        train: Train what is not trained (else only evaluate).
    """

    def __init__(self, jobs: int, threads: int, progress: Progress,
                 split_opts: Dict[str, List[str]], train: bool) -> None:
        self.jobs = jobs
        self.progress = progress
        self.split_opts = split_opts
        self.train_missing = train
        self.env = dict(os.environ, OMP_NUM_THREADS=str(threads),
                        MKL_NUM_THREADS=str(threads))
        self.procs: set = set()
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def command(self, args: List[str], log_path: str, mode: str = 'w'):
        """Run ``python args`` with output to ``log_path``; return the
        exit status and the wall time (s)."""
        start = time.time()
        with open(log_path, mode) as log:
            log.write(f'# {time.strftime("%Y-%m-%d %H:%M:%S")}: '
                      f'{" ".join(args)}\n')
            log.flush()
            with self.lock:
                if self.stopping.is_set():
                    return -1, 0.0
                proc = subprocess.Popen([sys.executable] + args, stdout=log,
                                        stderr=subprocess.STDOUT,
                                        env=self.env)
                self.procs.add(proc)
            code = proc.wait()
            with self.lock:
                self.procs.discard(proc)
        return code, time.time() - start

    def train(self, run: Run) -> bool:
        """Train (or resume) ``run``; record the session in its state. A
        run dir trained with another config (:func:`config_change`) is
        trained from scratch, its checkpoints set aside."""
        os.makedirs(run.work_dir, exist_ok=True)
        change = config_change(run)
        if change:
            stale = set_aside(run)
            self.progress.say(
                f'retrain {run.label} from scratch: {change}' +
                (f'; its checkpoints moved to {stale}' if stale else ''))
        resume = None if change else resume_from(run)
        state_path = osp.join(run.work_dir, STATE_FILE)
        state = read_json(state_path)
        sessions = state['sessions'] if state and resume else []

        def record() -> None:
            write_json(state_path, OrderedDict(
                config=run.config, options=run.options,
                config_hash=run.config_hash, sessions=sessions,
                train_seconds=sum(s['seconds'] for s in sessions)))

        record()  # the config hash, before any checkpoint of this config
        args = [osp.join(REPO, 'tools', 'train.py'), run.config,
                '--work-dir', run.work_dir]
        if resume:
            args += ['--resume', resume]
        args += ['--cfg-options'] + run.options
        how = f'resume from {osp.basename(resume)}' if resume else 'scratch'
        log = osp.join(run.work_dir, 'train.log')
        self.progress.say(f'start train {run.label} ({how}), log: {log}')
        code, seconds = self.command(args, log, 'a')
        sessions.append(dict(resumed_from=resume, seconds=seconds,
                             returncode=code))
        record()
        if code != 0:
            return self.fail(run, 'train', f'exit status {code}', log)
        if not trained(run):
            return self.fail(run, 'train', 'finished without the final '
                             f'checkpoint {run.final}', log)
        self.progress.step(f'train {run.label} done in {fmt_seconds(seconds)}')
        return True

    def evaluate(self, run: Run, split: str) -> bool:
        """Evaluate the final checkpoint of ``run`` on ``split``."""
        options = eval_options(run, self.split_opts[split])
        log = osp.join(run.work_dir, f'eval_{split}.log')
        self.progress.say(f'start eval {run.label} on {split}, log: {log}')
        code, seconds = self.command(
            [osp.join(REPO, 'tools', 'test.py'), run.config, run.final,
             '--work-dir', run.eval_dir(split), '--cfg-options'] + options,
            log)
        if code != 0:
            return self.fail(run, split, f'exit status {code}', log)
        from sar_plugin.report.runs import find_record
        try:
            record = find_record(run.eval_dir(split))
        except FileNotFoundError as err:
            return self.fail(run, split, str(err), log)
        if osp.getmtime(record) < time.time() - seconds - 2:  # mtime slack
            return self.fail(run, split, 'tools/test.py wrote no new record '
                             f'(newest: {record})', log)
        write_json(osp.join(run.eval_dir(split), EVAL_FILE), OrderedDict(
            checkpoint=run.final, stamp=checkpoint_stamp(run.final),
            options=options, config_hash=run.eval_hashes[split],
            record=osp.abspath(record), seconds=seconds))
        self.progress.step(f'eval {run.label} on {split} done in '
                           f'{fmt_seconds(seconds)}')
        return True

    def fail(self, run: Run, step: str, why: str, log: str) -> bool:
        """Record (in ``run.errors``) and announce a failed step."""
        if self.stopping.is_set():
            why = 'interrupted'
        what = 'train' if step == 'train' else f'eval on {step}'
        run.errors[step] = f'{what} failed: {why} (log: {log})'
        self.progress.step(f'{what} {run.label} FAILED: {why}, log: {log}'
                           f'{last_line(log)}')
        return False

    def process(self, run: Run) -> None:
        """Every step ``run`` still needs, in order."""
        todo = [s for s in self.split_opts
                if not evaluated(run, s, self.split_opts[s])]
        name = osp.basename(run.final)
        if trained(run):
            done = [s for s in self.split_opts if s not in todo]
            self.progress.say(f'skip train {run.label}: {name} is there' + (
                f'; skip eval on {", ".join(done)}: done' if done else ''))
        elif not self.train_missing:
            change = config_change(run)
            run.errors['train'] = \
                f'not trained with its config ({change}; --eval-only)' \
                if change else f'not trained (no {name}; --eval-only)'
            self.progress.say(f'{run.label}: {run.errors["train"]}')
            return
        elif self.train(run):
            todo = list(self.split_opts)  # a new checkpoint
        else:
            self.skip(run, list(self.split_opts), 'training failed')
            return
        for split in todo:
            if self.stopping.is_set():
                return
            self.evaluate(run, split)

    def skip(self, run: Run, splits: Sequence[str], why: str) -> None:
        for split in splits:
            self.progress.step(f'eval {run.label} on {split} skipped: {why}')

    def run_all(self, runs: Sequence[Run]) -> None:
        """:meth:`process` every run, ``jobs`` at once; on an interrupt the
        running processes are terminated."""
        pool = ThreadPoolExecutor(max_workers=self.jobs)
        try:
            for future in [pool.submit(self.process, r) for r in runs]:
                future.result()
        except BaseException:
            self.stopping.set()
            with self.lock:
                for proc in self.procs:
                    proc.terminate()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def count_steps(runs: Sequence[Run], split_opts: Dict[str, List[str]],
                train: bool) -> int:
    """Progress events to come: a training per untrained run (with all its
    evaluations), else the evaluations not done yet."""
    total = 0
    for run in runs:
        if not trained(run):
            total += (1 + len(split_opts)) if train else 0
        else:
            total += sum(not evaluated(run, s, o)
                         for s, o in split_opts.items())
    return total


def parallelism(jobs: Optional[int], threads: Optional[int],
                todo: int) -> tuple:
    """``(jobs, threads)``: jobs x threads = the CPU count unless given."""
    cpus = os.cpu_count() or 1
    if jobs is None:
        jobs = max(1, min(cpus // (threads or 1), todo))
    if threads is None:
        threads = max(1, cpus // jobs)
    if jobs * threads > cpus:
        print(f'[sweep] warning: {jobs} jobs x {threads} threads > '
              f'{cpus} CPUs', flush=True)
    return jobs, threads


# ---------------------------------------------------------------- results


def result_entry(run: Run, split: str,
                 split_opts: Dict[str, List[str]]) -> dict:
    """The ``results.json`` entry of ``run`` on ``split``."""
    entry = OrderedDict(method=run.method, seed=run.seed, split=split,
                        config=run.config, config_hash=run.config_hash,
                        work_dir=run.work_dir, checkpoint=run.final)
    state = read_json(osp.join(run.work_dir, STATE_FILE)) or {}
    entry['train_seconds'] = state.get('train_seconds')
    if not evaluated(run, split, split_opts[split]):
        error = run.errors.get(split) or run.errors.get('train')
        entry['status'] = 'missing' if error is None else 'failed'
        entry['error'] = error or config_change(run) or (
            'not trained' if not trained(run) else
            'no evaluation of the final checkpoint with these options')
        return entry
    done = read_json(osp.join(run.eval_dir(split), EVAL_FILE))
    entry.update(status='ok', eval_seconds=done['seconds'],
                 record=done['record'])
    from sar_plugin.report.sweep import record_numbers
    entry.update(record_numbers(done['record']))
    return entry


def write_results(args: argparse.Namespace, runs: Sequence[Run],
                  split_opts: Dict[str, List[str]]) -> dict:
    methods = OrderedDict()
    for run in runs:
        methods.setdefault(run.method, run.config)
    results = OrderedDict(
        sweep=OrderedDict(
            methods=methods, seeds=list(args.seeds),
            splits=list(split_opts), cfg_options=list(args.cfg_options),
            method_options={k: v for k, v in method_options(
                args.method_options, list(methods)).items() if v},
            split_options=split_opts, work_dir=osp.abspath(args.work_dir),
            written=time.strftime('%Y-%m-%d %H:%M:%S')),
        runs=[result_entry(r, s, split_opts) for r in runs
              for s in split_opts])
    write_json(osp.join(args.work_dir, 'results.json'), results)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    split_opts = split_options(args.split_options, args.splits)
    runs = plan(args)
    for run in runs:
        check_state(run)
    os.makedirs(args.work_dir, exist_ok=True)
    if not args.report_only:
        train = not args.eval_only
        total = count_steps(runs, split_opts, train)
        todo = sum(not trained(r) or not all(
            evaluated(r, s, o) for s, o in split_opts.items()) for r in runs)
        jobs, threads = parallelism(args.jobs, args.threads, max(todo, 1))
        progress = Progress(total)
        progress.say(f'{len(runs)} runs, {total} steps to do, {jobs} at '
                     f'once x {threads} threads')
        Scheduler(jobs, threads, progress, split_opts, train).run_all(runs)
    results = write_results(args, runs, split_opts)
    from sar_plugin.report.sweep import make_sweep_report
    files = make_sweep_report(results, osp.join(args.work_dir, 'report'),
                              args.confidence, args.bootstrap, args.title)
    print(f'[sweep] results: {osp.abspath(args.work_dir)}/results.json\n'
          f'[sweep] report:  {osp.abspath(files["markdown"])}\n'
          f'[sweep]          {osp.abspath(files["html"])}', flush=True)
    bad = [r for r in results['runs'] if r['status'] != 'ok']
    for entry in bad:
        print(f'[sweep] {entry["status"]}: {entry["method"]} seed'
              f'{entry["seed"]} on {entry["split"]}: {entry["error"]}',
              flush=True)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
