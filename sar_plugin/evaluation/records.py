"""Where evaluation records go: one JSON (and optional ``.npz``) per
evaluation under the run's log dir, so reports can be made from a finished
run without re-running it.

Layout (``<log_dir>`` is ``<work_dir>/<timestamp>``, the directory of the
run's ``.log`` file)::

    <log_dir>/<subdir>/iter_<N>.json     # N = training iterations completed
    <log_dir>/<subdir>/iter_<N>.npz      # arrays, when the metric has any
    <log_dir>/<subdir>/latest.json       # copy of the newest record
    <log_dir>/<subdir>/latest.npz

``tools/test.py`` on a checkpoint has no iteration count: records are then
named ``eval_<i>`` (``i`` counts the metric's evaluations).
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict, Optional

import numpy as np
from mmengine.dist import is_main_process
from mmengine.logging import MessageHub, print_log


def run_log_dir() -> Optional[str]:
    """The current run's log dir (``<work_dir>/<timestamp>``), or ``None``.

    A metric has no runner reference. Each runner creates its own logger
    (named after the run) writing ``<log_dir>/<timestamp>.log``, and the most
    recently created logger is MMEngine's current one, so its file names the
    directory. The visualizer is no substitute: MMSeg configs give it a
    fixed name, so a second runner in one process reuses the first one's.
    """
    from mmengine.logging import MMLogger
    try:
        log_file = MMLogger.get_current_instance().log_file
    except Exception:
        return None
    return osp.dirname(osp.abspath(log_file)) if log_file else None


def current_iter() -> Optional[int]:
    """Training iterations completed, as in the checkpoint name ``iter_N``.

    MMEngine's ``RuntimeInfoHook`` publishes ``iter`` (the 0-based index of
    the running iteration) before every training iteration, so during the
    validation after iteration ``N`` (and a test after training) the hub
    holds ``N - 1``. ``None`` when nothing was published (e.g.
    ``tools/test.py`` on a checkpoint).
    """
    try:
        value = MessageHub.get_current_instance().get_info('iter')
    except Exception:
        return None
    return None if value is None else int(value) + 1


def json_float(value) -> Optional[float]:
    """``float(value)``, with ``nan`` as ``None`` (JSON has no NaN)."""
    value = float(value)
    return None if np.isnan(value) else value


class RecordWriter:
    """Writes a metric's per-evaluation records (see the module docstring).

    Args:
        subdir (str): Folder under the run's log dir (``longtail_eval``...).
        save_dir (str, optional): Write here instead of
            ``<log_dir>/<subdir>``.
        owner (str): Name used in the warning printed once when there is
            neither ``save_dir`` nor a run log dir.
    """

    def __init__(self, subdir: str, save_dir: Optional[str] = None,
                 owner: str = 'metric') -> None:
        self.subdir = subdir
        self.save_dir = save_dir
        self.owner = owner
        self.num_writes = 0
        self._written: set = set()
        self._warned = False

    def target_dir(self) -> Optional[str]:
        if self.save_dir is not None:
            return self.save_dir
        log_dir = run_log_dir()
        if log_dir is None:
            if not self._warned:
                print_log(
                    f'{self.owner}: no save_dir and no run log dir; the '
                    f'{self.subdir} records are not written',
                    logger='current', level=30)
                self._warned = True
            return None
        return osp.join(log_dir, self.subdir)

    def write(self, record: dict,
              arrays: Optional[Dict[str, np.ndarray]] = None) -> Optional[str]:
        """Write ``record`` (and ``arrays`` as ``.npz``) on the main process.

        ``record['iter']`` is set from :func:`current_iter` when missing.

        Returns:
            str | None: The JSON path, or ``None`` when nothing was written.
        """
        self.num_writes += 1
        record.setdefault('iter', current_iter())
        if not is_main_process():
            return None
        save_dir = self.target_dir()
        if save_dir is None:
            return None
        os.makedirs(save_dir, exist_ok=True)
        stem = f"iter_{record['iter']}" if record['iter'] is not None \
            else f'eval_{self.num_writes}'
        path, j = osp.join(save_dir, stem + '.json'), 0
        # a second evaluation at the same iteration (a test after training)
        # gets its own file; rewriting our own file is fine
        while osp.exists(path) and path not in self._written:
            j += 1
            path = osp.join(save_dir, f'{stem}_{j}.json')
        self._written.add(path)
        with open(path, 'w') as f:
            json.dump(record, f, indent=2)
        shutil.copyfile(path, osp.join(save_dir, 'latest.json'))
        if arrays is not None:
            npz = path[:-len('.json')] + '.npz'
            np.savez_compressed(npz, **arrays)
            shutil.copyfile(npz, osp.join(save_dir, 'latest.npz'))
        return path
