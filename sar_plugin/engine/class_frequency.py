"""The training split's class count behind ``class_frequency='auto'`` (the
class-frequency part of :class:`~.LongTailEvalHook`)."""
import hashlib
import json
import os
import os.path as osp
from typing import Any, Optional

from mmengine.dist import barrier, is_main_process
from mmengine.logging import print_log

from ..evaluation.class_counts import count_classes, strip_dataset_cfg

NAME = 'LongTailEvalHook'


def _plain(value: Any) -> Any:
    """``ConfigDict``s and tuples as JSON-able builtins, for the hash."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool,
                                       type(None))) else repr(value)


def frequency_file(runner, split: str = 'train',
                   cache_dir: Optional[str] = None) -> str:
    """The cached class count of ``split``, counted first when missing.

    The classes of the config's ``<split>_dataloader`` dataset are counted
    (annotations only, with a progress bar;
    :func:`~sar_plugin.evaluation.class_counts.count_classes`) into
    ``<cache_dir>/class_frequency_<split>_<hash>.json``. The hash is taken
    over the dataset config (annotation pipeline), so a changed data root or
    label map is counted anew and a rerun, resume or ``tools/test.py`` in
    the same work dir reuses the count. Rank 0 counts, the other ranks wait
    and read the file.

    Args:
        runner: The runner (its ``cfg`` and ``work_dir``).
        split (str): The split counted. Defaults to ``'train'``.
        cache_dir (str, optional): Where the count is kept; ``None``: the
            run's ``work_dir``.

    Raises:
        KeyError: The config has no ``<split>_dataloader``.
        FileNotFoundError: The file is missing on this rank (several
            machines without a shared ``cache_dir``).
    """
    key = f'{split}_dataloader'
    if runner.cfg.get(key) is None:
        raise KeyError(
            f"{NAME}: class_frequency='auto' counts the {key} of the config, "
            'which has none; give the metrics '
            'class_frequency=<file of tools/analysis/class_frequency.py>')
    dataset = _plain(strip_dataset_cfg(runner.cfg[key]['dataset']))
    digest = hashlib.sha1(json.dumps(dataset, sort_keys=True).encode())
    path = osp.join(cache_dir or runner.work_dir,
                    f'class_frequency_{split}_{digest.hexdigest()[:10]}.json')
    if is_main_process() and not osp.isfile(path):
        print_log(f'{NAME}: counting the classes of the {split} split once '
                  f'(cached in {path})', logger='current')
        record = count_classes(runner.cfg, split)
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        tmp = f'{path}.{os.getpid()}.tmp'
        with open(tmp, 'w') as f:
            json.dump(record, f, indent=2)
        os.replace(tmp, path)
    barrier()
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{NAME}: {path} is missing on this rank; with several machines '
            'set cache_dir to a shared folder')
    return path
