"""Write the deploy checkpoint of a model trained with sar_plugin.

    python tools/model_converters/sar2mmseg.py IN OUT

A SAR model *is* the MMSeg model plus the anchor losses' training-only state
(``<head>.anchor_losses.*``), so any MMSeg tool loads a SAR runner
checkpoint as it is with torch < 2.6 (the anchor-loss entries are reported as
unexpected). With torch >= 2.6, ``torch.load`` defaults to
``weights_only=True`` and stock MMEngine runner checkpoints (message hub,
numpy meta) do not load at all. This tool writes what deploys everywhere:

- ``state_dict``: every entry, unchanged, except the anchor losses'
  (``*.anchor_losses.*``, and their module metadata), which are dropped;
- ``meta``: converted to plain Python types only (tuples and numpy arrays
  become lists, numpy scalars Python numbers; anything else is dropped and
  reported), without the config text (``meta['config']``, which MMEngine's
  resume executes), with a ``converted_from`` entry; ``torch.load(OUT,
  weights_only=True)`` works in a process that never imported sar_plugin;
- every other entry of a runner checkpoint (``optimizer``, ``message_hub``,
  ``param_schedulers``...) is left out: the output cannot be resumed from.

Nothing is renamed. ``IN`` is read weights-only
(:func:`sar_plugin.utils.loading.read_checkpoint_file`); the tool exits
non-zero, naming the file, when ``IN`` does not exist or is not a checkpoint.
"""
import argparse
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from sar_plugin.utils.loading import CheckpointReadError as ConversionError
from sar_plugin.utils.loading import (read_conversion_input,
                                      write_checkpoint)

PROG = 'sar2mmseg'
KEPT = ('meta', 'state_dict')
#: the anchor losses' entries (training-only state), at any head
TRAINING_ONLY = re.compile(r'(^|\.)anchor_losses(\.|$)')
#: a checkpoint of sar_plugin < 0.2, whose SARHead nested the head
_NESTED = re.compile(r'(^|\.)(decode_head|auxiliary_head)(\.\d+)?\.head\.')


def to_plain(value: Any, path: str, dropped: List[str]) -> Any:
    """A copy of ``value`` made of plain Python types only.

    dicts (string or integer keys), lists, str, int, float, bool and None are
    kept; tuples become lists, numpy arrays and tensors nested lists, numpy
    scalars Python numbers. Anything else is left out and its location
    appended to ``dropped``.

    Args:
        value: The value to convert.
        path (str): Its location, for the report (``meta.dataset_meta``).
        dropped (list[str]): Receives the locations of dropped values.

    Returns:
        The converted value, or None when it was dropped.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.tolist()
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                dropped.append(f'{path}[{key!r}]')
                continue
            key = str(key) if isinstance(key, str) else int(key)
            sub = f'{path}.{key}'
            converted = to_plain(item, sub, dropped)
            if converted is not None or item is None:
                out[key] = converted
        return out
    if isinstance(value, (list, tuple)):
        out = []
        for i, item in enumerate(value):
            converted = to_plain(item, f'{path}[{i}]', dropped)
            if converted is None and item is not None:
                return None  # a list with holes would mean something else
            out.append(converted)
        return out
    dropped.append(f'{path} ({type(value).__name__})')
    return None


def convert_checkpoint(
        ckpt: Mapping,
        source: str = '<checkpoint>') -> Tuple[Dict[str, Any], Dict]:
    """The deploy checkpoint of ``ckpt``: its state dict without the
    anchor-loss entries, and its meta as plain Python types.

    Args:
        ckpt (Mapping): A checkpoint with a ``state_dict`` entry (e.g. an
            MMEngine runner checkpoint); it is not modified.
        source (str): The name used in messages and in
            ``meta['converted_from']``.

    Returns:
        Tuple[dict, dict]: ``{'meta': ..., 'state_dict': ...}`` and a report
        with the ``dropped`` anchor-loss keys, the ``dropped_meta``
        locations and the ``dropped_entries`` (top-level keys left out).

    Raises:
        ConversionError: For a checkpoint of the old nested ``SARHead``
            layout (``decode_head.head.*`` beside ``anchor_losses.*``).
    """
    source_sd = ckpt['state_dict']
    dropped = [k for k in source_sd if TRAINING_ONLY.search(k)]
    nested = [k for k in source_sd if _NESTED.search(k)]
    if dropped and nested and not any(
            k.endswith('conv_seg.weight') and not _NESTED.search(k)
            for k in source_sd):
        raise ConversionError(
            f'{source} has the nested layout of sar_plugin < 0.2 ('
            f'{nested[0]}...): rename <head>.head.* to <head>.* first; '
            'the state dict of a SAR model is now the plain model\'s')
    state_dict = OrderedDict(
        (k, v) for k, v in source_sd.items() if not TRAINING_ONLY.search(k))
    metadata = getattr(source_sd, '_metadata', None)
    if metadata is not None:
        state_dict._metadata = OrderedDict(
            (k, v) for k, v in metadata.items() if not TRAINING_ONLY.search(k))

    dropped_meta: List[str] = []
    meta = ckpt.get('meta') or {}
    if isinstance(meta, Mapping) and 'config' in meta:
        # text MMEngine's resume would execute
        meta = dict(meta)
        meta.pop('config')
        dropped_meta.append('meta.config (config text)')
    meta = to_plain(meta, 'meta', dropped_meta)
    if not isinstance(meta, dict):
        dropped_meta.append('meta')
        meta = {}
    meta['converted_from'] = dict(tool=PROG, source=osp.basename(source))
    out = {'meta': meta, 'state_dict': state_dict}
    report = dict(
        dropped=dropped,
        dropped_meta=dropped_meta,
        dropped_entries=[k for k in ckpt if k not in KEPT])
    return out, report


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Write the deploy checkpoint of a model trained with '
        'sar_plugin (an MMEngine runner checkpoint or a state dict): the '
        'state dict without the training-only anchor-loss entries, meta as '
        'plain Python types, no optimizer, message hub or scheduler state. '
        'It loads with torch.load(weights_only=True) without sar_plugin.')
    parser.add_argument(
        'src',
        metavar='IN',
        help='checkpoint of a model trained with sar_plugin (read with '
        'torch.load(weights_only=True))')
    parser.add_argument(
        'dst',
        metavar='OUT',
        help='where to write the deploy checkpoint (parent directories '
        'are created; an existing file is overwritten)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the conversion.

    Returns:
        int: 0 on success, 1 when the checkpoint was refused.
    """
    args = parse_args(argv)
    try:
        ckpt = read_conversion_input(args.src, args.dst)
        out, report = convert_checkpoint(ckpt, source=args.src)
    except ConversionError as exc:
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 1
    print(f'dropped {len(report["dropped"])} anchor-loss entries '
          '(*.anchor_losses.*, training only)')
    if report['dropped_entries']:
        print('left out (deploy checkpoint): ' +
              ', '.join(report['dropped_entries']))
    if report['dropped_meta']:
        print('meta values that are not plain Python types, left out: ' +
              ', '.join(report['dropped_meta']))
    write_checkpoint(out, args.dst)
    print(f'wrote {args.dst} ({len(out["state_dict"])} entries)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
