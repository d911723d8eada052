"""Count the training split's classes once for ``class_frequency='auto'``."""
import hashlib
import json
import os
import os.path as osp
from typing import Optional

from mmengine.dist import barrier, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

from ..evaluation.buckets import AUTO_FREQUENCY
from ..evaluation.class_counts import count_classes, strip_dataset_cfg
from ..evaluation.longtail_base import longtail_metrics


def _plain(value):
    """``ConfigDict``s and tuples as JSON-able builtins, for the hash."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool,
                                       type(None))) else repr(value)


@HOOKS.register_module()
class ClassFrequencyHook(Hook):
    """Resolve ``class_frequency='auto'`` of the long-tail metrics.

    Before the first validation or test, the classes of the config's
    ``<split>_dataloader`` dataset are counted (annotations only, with a
    progress bar; :func:`~sar_plugin.evaluation.class_counts.count_classes`)
    and written to ``<cache_dir>/class_frequency_<split>_<hash>.json``; every
    metric of the evaluator with ``class_frequency='auto'`` then reads that
    file. The hash is taken over the dataset config (annotation pipeline),
    so a changed data root or label map is counted anew and a rerun, resume
    or ``tools/test.py`` in the same work dir reuses the count. Rank 0
    counts, the other ranks wait and read the file.

    A metric left at ``'auto'`` without this hook raises at evaluation
    (buckets are never silently absent); ``configs/_base_/sar_runtime.py``
    lists the hook, and ``tools/test.py --longtail`` adds it. Config::

        custom_hooks = [dict(type='ClassFrequencyHook')]

    Args:
        split (str): The split counted. Defaults to ``'train'``.
        cache_dir (str, optional): Where the count is kept; ``None``: the
            run's ``work_dir``.
    """
    priority = 'HIGH'

    def __init__(self, split: str = 'train',
                 cache_dir: Optional[str] = None) -> None:
        self.split = split
        self.cache_dir = cache_dir
        self._path: Optional[str] = None

    def before_val(self, runner) -> None:
        self._resolve(runner, runner.val_loop)

    def before_test(self, runner) -> None:
        self._resolve(runner, runner.test_loop)

    def _resolve(self, runner, loop) -> None:
        metrics = [m for m in longtail_metrics(loop)
                   if m.class_frequency == AUTO_FREQUENCY]
        if not metrics:
            return
        path = self.frequency_file(runner)
        for metric in metrics:
            metric.class_frequency = path

    def frequency_file(self, runner) -> str:
        """The cached count of the split, counted first when missing."""
        if self._path is not None:
            return self._path
        key = f'{self.split}_dataloader'
        if runner.cfg.get(key) is None:
            raise KeyError(
                f"ClassFrequencyHook: class_frequency='auto' counts the "
                f'{key} of the config, which has none; give the metrics '
                'class_frequency=<file of tools/analysis/class_frequency.py>')
        dataset = _plain(strip_dataset_cfg(runner.cfg[key]['dataset']))
        digest = hashlib.sha1(json.dumps(dataset, sort_keys=True).encode())
        path = osp.join(self.cache_dir or runner.work_dir,
                        f'class_frequency_{self.split}_'
                        f'{digest.hexdigest()[:10]}.json')
        if is_main_process() and not osp.isfile(path):
            print_log(f'ClassFrequencyHook: counting the classes of the '
                      f'{self.split} split once (cached in {path})',
                      logger='current')
            record = count_classes(runner.cfg, self.split)
            os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
            tmp = f'{path}.{os.getpid()}.tmp'
            with open(tmp, 'w') as f:
                json.dump(record, f, indent=2)
            os.replace(tmp, path)
        barrier()
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'ClassFrequencyHook: {path} is missing on this rank; with '
                'several machines set cache_dir to a shared folder')
        self._path = path
        return path
