"""Load a checkpoint for evaluation and refuse when the model is not filled.

MMEngine's ``load_from`` loads with ``strict=False`` and only logs the keys
that did not match, so a checkpoint of another architecture is evaluated
with randomly initialised layers and reports a wrong number with exit code
0. :func:`load_checkpoint_checked` loads through the same code path (the
modules' own ``_load_from_state_dict``) and raises, listing them, when any
parameter or persistent buffer of the model is missing from the checkpoint.
The anchor losses' entries (``*.anchor_losses.*``) are training-only and
never required.

Every file is read with ``torch.load(weights_only=True)`` passed explicitly
(:func:`sar_plugin.utils.checkpoint.load_checkpoint_file`), whatever
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says: a local path, or an ``http(s)``
URL through torch's hub cache. Other MMEngine schemes (``open-mmlab://``,
``torchvision://``, ``pavi://``, ``s3://``...) are refused: MMEngine loads
them without ``weights_only``.
"""
import inspect
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Tuple

import torch

from mmengine.dist import barrier, get_dist_info
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper
from torch import nn

from .checkpoint import (CheckpointLoadError, UnsafeCheckpointError,
                         check_weights_only_enforced, load_checkpoint_file,
                         load_error_reason, safe_loading)

#: entries a test-time model may lack: SARHead's training-only state
OPTIONAL = re.compile(r'(^|\.)anchor_losses\.')
#: ``scheme://`` of a URL (MMEngine's loaders dispatch on it)
_SCHEME = re.compile(r'^([A-Za-z][A-Za-z0-9+.-]*)://')


def _load_url(url: str, map_location: Any) -> Any:
    """An ``http(s)`` checkpoint through torch's hub cache, weights-only."""
    from torch import hub
    if 'weights_only' not in inspect.signature(
            hub.load_state_dict_from_url).parameters:
        raise CheckpointLoadError(
            f'{url}: this torch ({torch.__version__}) cannot download with '
            'weights_only=True; download it and pass the local file')
    check_weights_only_enforced(url)
    try:
        with safe_loading():
            return hub.load_state_dict_from_url(
                url, map_location=map_location, weights_only=True)
    except UnsafeCheckpointError as exc:
        raise UnsafeCheckpointError(f'{url}: {exc}') from exc
    except Exception as exc:
        raise CheckpointLoadError(
            f'{url}: cannot be downloaded and loaded with '
            f'torch.load(weights_only=True): {load_error_reason(exc)}'
        ) from exc


def load_checkpoint_weights_only(filename: str,
                                 map_location: Any = 'cpu') -> Any:
    """``torch.load(weights_only=True)`` of a local file (``~`` expanded)
    or an ``http(s)`` URL (rank 0 downloads first, as MMEngine does).

    Raises:
        UnsafeCheckpointError: State the allow-list refuses (named).
        CheckpointLoadError: Any other failure, or another scheme
            (``open-mmlab://``, ``s3://``...): MMEngine's loaders for those
            do not load weights-only.
    """
    filename = str(filename)
    match = _SCHEME.match(filename)
    if match is None:
        return load_checkpoint_file(
            osp.expanduser(filename), map_location=map_location)
    if match.group(1).lower() not in ('http', 'https'):
        raise CheckpointLoadError(
            f'{filename}: {match.group(1)}:// checkpoints are not loaded: '
            'MMEngine reads them without weights_only. Download the file '
            'and pass its local path (or an http(s) URL).')
    rank, world_size = get_dist_info()
    if rank == 0:
        checkpoint = _load_url(filename, map_location)
    if world_size > 1:
        barrier()
        if rank > 0:
            checkpoint = _load_url(filename, map_location)
    return checkpoint


def _target(model: nn.Module) -> Tuple[nn.Module, str]:
    """The module the checkpoint's entries belong to, and its name."""
    if is_model_wrapper(model):
        model = model.module
    if isinstance(model, BaseTTAModel):
        return model.module, 'the test-time-augmentation model\'s module'
    return model, 'the model'


def load_checkpoint_checked(runner,
                            filename: str,
                            allow_missing: bool = False,
                            map_location: str = 'cpu') -> List[str]:
    """Load ``filename`` into ``runner.model`` before ``runner.test()``.

    Calls the runner's ``after_load_checkpoint`` hooks, loads with
    ``strict=False`` through the modules' own loading hooks, then checks.
    Marks the runner as loaded, so ``runner.test()`` does not load again.

    Args:
        runner: An MMEngine runner whose model is built.
        filename (str): The checkpoint: a local file or an ``http(s)`` URL,
            read with ``weights_only=True``
            (:func:`load_checkpoint_weights_only`).
        allow_missing (bool): Only warn about missing entries (MMEngine's
            own behaviour) instead of raising.
        map_location (str): As for ``torch.load``.

    Returns:
        List[str]: The required entries the checkpoint did not provide
        (empty unless ``allow_missing``).

    Raises:
        RuntimeError: When required entries are missing, listing them.
        UnsafeCheckpointError: The file holds state the weights-only
            allow-list refuses.
        CheckpointLoadError: The file cannot be loaded weights-only (see
            :func:`load_checkpoint_weights_only`).
    """
    checkpoint = load_checkpoint_weights_only(
        filename, map_location=map_location)
    runner.call_hook('after_load_checkpoint', checkpoint=checkpoint)
    state_dict = checkpoint.get('state_dict', checkpoint) \
        if isinstance(checkpoint, dict) else checkpoint
    if not isinstance(state_dict, dict):
        raise RuntimeError(f'{filename}: not a checkpoint (a dict with a '
                           f'state_dict), got {type(state_dict).__name__}')
    metadata = getattr(state_dict, '_metadata', None)
    state_dict = OrderedDict(
        (re.sub(r'^module\.', '', k), v) for k, v in state_dict.items())
    if metadata is not None:
        state_dict._metadata = metadata
    model, what = _target(runner.model)
    result = model.load_state_dict(state_dict, strict=False)
    optional = [k for k in result.missing_keys if OPTIONAL.search(k)]
    missing = [k for k in result.missing_keys if not OPTIONAL.search(k)]
    if optional:
        print_log(f'{filename}: {len(optional)} anchor-loss entries are not '
                  'in the checkpoint; they are training-only and unused at '
                  'test time.', logger='current')
    if result.unexpected_keys:
        print_log(f'{filename}: {len(result.unexpected_keys)} checkpoint '
                  f'entries are not used by {what}: '
                  f'{_listing(result.unexpected_keys)}', logger='current',
                  level=30)
    if missing:
        message = (f'{filename} does not fill {len(missing)} of the '
                   f'parameters/buffers of {what}, which would be evaluated '
                   f'with their initial values: {_listing(missing)}. Is it a '
                   'checkpoint of this config\'s architecture? '
                   '(--allow-missing evaluates anyway)')
        if not allow_missing:
            raise RuntimeError(message)
        print_log(message, logger='current', level=30)
    runner._has_loaded = True
    runner._load_from = filename
    print_log(f'Load checkpoint from {filename}', logger='current')
    return missing


def _listing(keys: List[str], most: int = 20) -> str:
    shown = ', '.join(keys[:most])
    return shown + (f' ... ({len(keys) - most} more)'
                    if len(keys) > most else '')


class CheckpointReadError(Exception):
    """A file that is not a readable checkpoint (the message names it)."""


def read_checkpoint_file(path: str) -> Dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` on the CPU
    (:func:`~sar_plugin.utils.checkpoint.load_checkpoint_file`: MMEngine's
    runner checkpoints load, ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is
    ignored).

    Args:
        path (str): The checkpoint file.

    Returns:
        dict: The checkpoint, with a ``state_dict`` entry (a bare state dict
        is wrapped as ``{'state_dict': ...}``).

    Raises:
        CheckpointReadError: When ``path`` does not exist or does not hold a
            checkpoint.
    """
    if not osp.exists(path):
        raise CheckpointReadError(f'{path}: no such file')
    if not osp.isfile(path):
        raise CheckpointReadError(f'{path}: not a file')
    with open(path, 'rb') as f:
        magic = f.read(4)
    # torch.save writes a zip archive; files of torch < 1.6 are pickles
    if magic != b'PK\x03\x04' and magic[:1] != b'\x80':
        raise CheckpointReadError(
            f'{path} is not a checkpoint: neither a torch zip archive nor a '
            'pickle')
    try:
        obj = load_checkpoint_file(path, map_location='cpu')
    except CheckpointLoadError as exc:
        cause = exc.__cause__  # the error without the file's name
        if cause is None:
            reason = str(exc)
        elif isinstance(exc, UnsafeCheckpointError):
            reason = str(cause)
        else:
            reason = load_error_reason(cause)
        raise CheckpointReadError(
            f'{path} is not a checkpoint that torch.load(weights_only=True) '
            f'can read: {reason}') from exc
    if isinstance(obj, Mapping) and 'state_dict' in obj:
        ckpt = dict(obj)
    elif isinstance(obj, Mapping) and obj and all(
            isinstance(v, torch.Tensor) for v in obj.values()):
        ckpt = {'state_dict': obj}
    else:
        raise CheckpointReadError(
            f'{path} is not a checkpoint: expected a dict with a '
            f"'state_dict' entry (or a state dict), got {type(obj).__name__}")
    state_dict = ckpt['state_dict']
    if not isinstance(state_dict, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor)
            for k, v in state_dict.items()):
        raise CheckpointReadError(
            f"{path} is not a checkpoint: its 'state_dict' is not a mapping "
            'of names to tensors')
    return ckpt


def read_conversion_input(src: str, dst: str) -> Dict[str, Any]:
    """:func:`read_checkpoint_file` of a converter's input ``src``, refusing
    an output ``dst`` that is the input itself (it would be overwritten)."""
    if osp.isdir(dst):
        raise CheckpointReadError(
            f'{dst}: OUT is a directory; give the output file\'s name')
    if osp.exists(dst) and osp.exists(src) and osp.samefile(src, dst):
        raise CheckpointReadError(
            f'{dst}: OUT is IN, refusing to overwrite the input')
    return read_checkpoint_file(src)


def write_checkpoint(checkpoint: Dict[str, Any], dst: str) -> None:
    """``torch.save`` to ``dst``, creating its parent directories."""
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(checkpoint, dst)
