"""One run per work dir: the lock file that :class:`~.RunCheckHook` takes.

Two runs started with the same ``--work-dir`` overwrite each other's
checkpoints, share ``last_checkpoint`` and the long-tail records, and both
exit 0. :class:`WorkDirLock` takes ``<work_dir>/.sar_plugin.lock`` before
the run touches anything and refuses a second writer, naming the holder.
"""
import atexit
import json
import os
import os.path as osp
import socket
import time
from typing import Optional

from mmengine.logging import print_log

LOCK_NAME = '.sar_plugin.lock'


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _read(path: str) -> dict:
    try:
        with open(path) as f:
            holder = json.load(f)
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


class WorkDirLock:
    """The lock of one work dir, held by this process.

    The lock file holds the holder's pid, host and start time. A lock left by
    a process that no longer runs on this host (a killed run) is taken over
    with a warning; one of this very process (an earlier run in a notebook)
    is taken over silently; one held by a live process, or by another host
    (whose processes cannot be checked from here), raises naming the holder
    and the file to delete if that run is gone. The lock is released by
    :meth:`release` and at interpreter exit.
    """

    def __init__(self) -> None:
        self._path: Optional[str] = None

    def acquire(self, work_dir: str) -> None:
        """Take ``<work_dir>/.sar_plugin.lock`` (the folder is created).

        Raises:
            RuntimeError: A live run (or one on another host) holds it.
        """
        os.makedirs(work_dir, exist_ok=True)
        path = osp.join(work_dir, LOCK_NAME)
        me = dict(pid=os.getpid(), host=socket.gethostname(),
                  started=time.strftime('%Y-%m-%d %H:%M:%S'))
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = _read(path)
                if not self._stale(holder, me, path):
                    raise RuntimeError(
                        f'{work_dir} is in use by another run (pid '
                        f"{holder.get('pid')} on {holder.get('host')}, "
                        f"started {holder.get('started')}): two runs in one "
                        'work dir overwrite each other\'s checkpoints and '
                        'records. Give this run its own --work-dir, or, if '
                        f'that run is gone, delete {path}.')
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, 'w') as f:
                json.dump(me, f)
            break
        self._path = path
        atexit.register(self.release)

    @staticmethod
    def _stale(holder: dict, me: dict, path: str) -> bool:
        """Whether ``holder``'s lock may be taken over."""
        pid = holder.get('pid')
        if not isinstance(pid, int) or holder.get('host') != me['host']:
            return False
        if pid == me['pid']:
            return True  # an earlier run of this process
        if _alive(pid):
            return False
        print_log(f'{path}: taking over the lock of pid {pid} (started '
                  f"{holder.get('started')}), which no longer runs",
                  logger='current', level=30)
        return True

    def release(self) -> None:
        """Remove the lock file if this process still holds it."""
        path, self._path = self._path, None
        if path is not None and _read(path).get('pid') == os.getpid():
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
