"""Turn a checkpoint trained with ``SARHead`` into a plain MMSeg checkpoint.

    python tools/model_converters/sar2mmseg.py IN OUT

SAR only adds training losses: the test-time model is the wrapped head
itself. This tool writes the *deploy* checkpoint of that model, which stock
MMSegmentation 1.x loads without the plug-in (e.g. ``mmseg.apis.init_model``
with the baseline config, or ``load_checkpoint(..., strict=True)``):

- ``state_dict``: for every ``SARHead`` found (``decode_head.``, or
  ``decode_head.<N>.`` for the last head of a ``CascadeEncoderDecoder``,
  behind optional ``module.`` / ``ema_model.`` wrappers), the wrapped head's
  entries ``<P>head.*`` are moved back to ``<P>*`` and the anchor losses'
  entries ``<P>anchor_losses.*`` (training-only) are dropped. Every other
  entry (backbone, neck, auxiliary heads, the first heads of a cascade) is
  kept unchanged. The module metadata torch keeps with a state dict (norm
  layer versions) is renamed the same way.
- ``meta``: kept, converted to plain Python types only (tuples and numpy
  arrays become lists, numpy scalars Python numbers; anything else is dropped
  and reported), so ``torch.load(OUT, weights_only=True)`` works in a
  process that never imported ``sar_plugin``. A ``converted_from`` entry
  records the source file and the ``SARHead`` prefixes.
- everything else of an MMEngine runner checkpoint (``optimizer``,
  ``message_hub``, ``param_schedulers``, ``ema_state_dict``...) is dropped:
  the output cannot be resumed from.

``IN`` is read with ``torch.load(weights_only=True)``; importing
``sar_plugin`` (done here) allow-lists the MMEngine/numpy types runner
checkpoints hold, never by turning the check off. The tool refuses, with a
non-zero exit status and a message naming the file, when ``IN`` does not
exist, is not a checkpoint, or has no ``SARHead`` entries.
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

import sar_plugin  # noqa: F401  (allow-lists runner checkpoint types)
from sar_plugin.utils.loading import CheckpointReadError as ConversionError
from sar_plugin.utils.loading import (read_conversion_input,
                                      write_checkpoint)
from sar_plugin.utils.state_dict import (HEAD, LOSSES, sar_head_prefixes,
                                         unwrap_sar_entries)

PROG = 'sar2mmseg'
KEPT = ('meta', 'state_dict')


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


def unwrap_metadata(metadata: Mapping, prefix: str) -> 'OrderedDict':
    """Rename the module metadata of a state dict like its entries.

    ``<P>head`` becomes ``<P>`` (replacing the wrapper's own entry) and
    ``<P>anchor_losses*`` is dropped, ``<P>`` being ``prefix`` without its
    trailing dot.
    """
    module = prefix[:-1]
    head, losses = prefix + HEAD[:-1], prefix + LOSSES[:-1]
    out = OrderedDict()
    for name, value in metadata.items():
        if name == module or name == losses or \
                name.startswith(losses + '.'):
            continue
        if name == head:
            name = module
        elif name.startswith(head + '.'):
            name = prefix + name[len(head) + 1:]
        out[name] = value
    return out


def convert_checkpoint(
        ckpt: Mapping,
        source: str = '<checkpoint>') -> Tuple[Dict[str, Any], Dict]:
    """The plain deploy checkpoint of a checkpoint trained with ``SARHead``.

    Args:
        ckpt (Mapping): A checkpoint with a ``state_dict`` entry (e.g. an
            MMEngine runner checkpoint); it is not modified.
        source (str): The name used in messages and in
            ``meta['converted_from']``.

    Returns:
        Tuple[dict, dict]: ``{'meta': ..., 'state_dict': ...}`` and a report
        with the ``SARHead`` ``prefixes``, the number of ``moved`` head
        entries, the ``dropped`` anchor-loss keys, the ``dropped_meta``
        locations and the ``dropped_entries`` (top-level keys left out).

    Raises:
        ConversionError: When the state dict has no ``SARHead`` entries.
    """
    state_dict = OrderedDict(ckpt['state_dict'])
    metadata = getattr(ckpt['state_dict'], '_metadata', None)
    prefixes = sar_head_prefixes(state_dict)
    if not prefixes:
        raise ConversionError(
            f'{source} has no SARHead entries (no `decode_head[.N].head.*` / '
            '`anchor_losses.*` keys): it is not a checkpoint of a model '
            'trained with SARHead, nothing to convert')
    moved, dropped = 0, []
    for prefix in prefixes:
        count, keys = unwrap_sar_entries(state_dict, prefix)
        moved += count
        dropped += keys
        if metadata is not None:
            metadata = unwrap_metadata(metadata, prefix)
    if metadata is not None:
        state_dict._metadata = metadata

    dropped_meta: List[str] = []
    meta = to_plain(ckpt.get('meta') or {}, 'meta', dropped_meta)
    if not isinstance(meta, dict):
        dropped_meta.append('meta')
        meta = {}
    meta['converted_from'] = dict(
        tool=PROG, source=osp.basename(source), sar_heads=list(prefixes))
    out = {'meta': meta, 'state_dict': state_dict}
    report = dict(
        prefixes=prefixes,
        moved=moved,
        dropped=dropped,
        dropped_meta=dropped_meta,
        dropped_entries=[k for k in ckpt if k not in KEPT])
    return out, report


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Convert a checkpoint trained with SARHead (an MMEngine '
        'runner checkpoint or a state dict) into a plain MMSeg deploy '
        'checkpoint that stock MMSegmentation loads without sar_plugin: '
        'decode_head[.N].head.* becomes decode_head[.N].*, the '
        'training-only anchor-loss entries are dropped, meta is kept as '
        'plain Python types, and the optimizer, message hub and parameter '
        'scheduler states are left out.')
    parser.add_argument(
        'src',
        metavar='IN',
        help='checkpoint of a model trained with SARHead (read with '
        'torch.load(weights_only=True))')
    parser.add_argument(
        'dst',
        metavar='OUT',
        help='where to write the plain MMSeg checkpoint (parent directories '
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
    print(f'{args.src}: SARHead at {", ".join(report["prefixes"])}')
    print(f'moved {report["moved"]} head entries from <prefix>head.* to '
          '<prefix>*')
    print(f'dropped {len(report["dropped"])} anchor-loss entries '
          '(<prefix>anchor_losses.*, training only)')
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
