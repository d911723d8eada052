"""Choosing and checking the checkpoint a run resumes from.

MMEngine resumes from the file named in ``<work_dir>/last_checkpoint``
without looking at it: a truncated or 0-byte file (a job killed while
saving, a full disk) fails with a bare ``EOFError`` or zip error, and a
mistyped ``--work-dir`` finds no ``last_checkpoint`` and silently trains
from scratch. :func:`find_resume_checkpoint` names the directory when it has
no checkpoint, and falls back, with a warning, to the newest checkpoint that
is intact; :func:`check_checkpoint_file` names the file and offers the
newest intact one beside it.

Intact means: a non-empty torch zip archive whose every member passes its
CRC check (``zipfile.testzip``), which catches truncation and corruption
without unpickling anything. Files in torch's legacy (non-zip) format are
accepted as they are.
"""
import glob
import os
import os.path as osp
import re
import zipfile
from typing import List, Optional

from mmengine.logging import print_log

_NUMBER = re.compile(r'(\d+)\.pth$')


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be a loadable checkpoint, or None if it can."""
    if not osp.exists(path):
        return 'does not exist'
    if osp.isdir(path):
        return 'is a directory, not a checkpoint file'
    size = osp.getsize(path)
    if size == 0:
        return 'is empty (0 bytes): the run was probably killed while saving'
    if not zipfile.is_zipfile(path):
        with open(path, 'rb') as f:
            head = f.read(2)
        if head[:1] == b'\x80':  # a legacy (pickle) torch file
            return None
        return (f'is not a torch checkpoint ({size} bytes, no zip '
                'directory): truncated or not a checkpoint')
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return f'is truncated or corrupt ({err})'
    if bad is not None:
        return f'is corrupt (bad CRC in member {bad!r})'
    return None


def list_checkpoints(work_dir: str) -> List[str]:
    """The ``*.pth`` files of ``work_dir``, newest first: the one named in
    ``last_checkpoint`` first, then by iteration/epoch number, then by
    modification time."""
    found = glob.glob(osp.join(work_dir, '*.pth'))

    def order(path: str):
        match = _NUMBER.search(osp.basename(path))
        return (int(match.group(1)) if match else -1, osp.getmtime(path))

    found.sort(key=order, reverse=True)
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.exists(last):
        with open(last) as f:
            named = f.read().strip()
        if named and not osp.isabs(named) and not osp.exists(named):
            named = osp.join(work_dir, osp.basename(named))
        if named and osp.dirname(osp.abspath(named)) != \
                osp.abspath(work_dir):
            # a copied work dir still names the original run's file
            local = osp.join(work_dir, osp.basename(named))
            use = local if osp.exists(local) else None
            print_log(
                f'{last} names {named}, outside this work dir (a copied or '
                'moved work dir?); resuming from '
                f'{use or "the newest checkpoint of this work dir"} instead',
                logger='current', level=30)
            named = use
        # a stale entry (its file deleted) names nothing to resume from
        if named and osp.exists(named):
            found = [named] + [p for p in found
                               if osp.abspath(p) != osp.abspath(named)]
    return found


def find_resume_checkpoint(work_dir: str,
                           missing_ok: bool = False) -> Optional[str]:
    """The newest intact checkpoint of ``work_dir``.

    Args:
        work_dir (str): The run's work dir.
        missing_ok (bool): Return None (start from scratch) when there is
            no checkpoint at all, instead of raising.

    Raises:
        FileNotFoundError: ``work_dir`` does not exist or holds no
            checkpoint (unless ``missing_ok``), naming it.
        RuntimeError: Checkpoints exist but none is intact, listing why.
    """
    candidates = list_checkpoints(work_dir) if osp.isdir(work_dir) else []
    if not candidates:
        if missing_ok:
            return None
        what = 'does not exist' if not osp.isdir(work_dir) else \
            f'has no checkpoint (*.pth; it holds: ' \
            f'{", ".join(sorted(os.listdir(work_dir))[:10]) or "nothing"})'
        raise FileNotFoundError(
            f'--resume: the work dir {work_dir} {what}. Check --work-dir (it '
            'defaults to work_dirs/<config name>), pass a checkpoint with '
            '--resume PATH, or use --auto-resume to start from scratch when '
            'nothing is there yet.')
    problems = []
    for path in candidates:
        problem = checkpoint_problem(path)
        if problem is None:
            if problems:
                print_log(
                    f'Resuming from {path}, the newest intact checkpoint: '
                    + '; '.join(problems), logger='current', level=30)
            return path
        problems.append(f'{path} {problem}')
    raise RuntimeError('--resume: no intact checkpoint in '
                       f'{work_dir}: ' + '; '.join(problems))


def check_checkpoint_file(path: str, what: str = 'checkpoint') -> None:
    """Raise a ``RuntimeError`` naming ``path`` (and the newest intact
    checkpoint beside it, if any) when it cannot be loaded. URLs and other
    non-local paths are left to MMEngine."""
    if '://' in path:
        return
    problem = checkpoint_problem(path)
    if problem is None:
        return
    hint = ''
    folder = osp.dirname(osp.abspath(path))
    if osp.isdir(folder):
        for other in list_checkpoints(folder):
            if osp.abspath(other) != osp.abspath(path) and \
                    checkpoint_problem(other) is None:
                hint = f'; the newest intact checkpoint beside it is {other}'
                break
    raise RuntimeError(f'{what} {path} {problem}{hint}')
