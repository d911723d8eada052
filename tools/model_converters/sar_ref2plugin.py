"""Convert a checkpoint of the reference SAR implementation to sar_plugin.

    python tools/model_converters/sar_ref2plugin.py IN OUT [--config CONFIG]
        [--cfg-options KEY=VALUE ...] [--loss-index I] [--allow-unmapped]

The reference implementation of SAR (Ge et al., AAAI 2024) is the GitHub
repository ``geyanqi/SAR``, built on MMSegmentation 0.29.1. Its layout was
read at commit ``2b9747eb27b95998265800b3e432c4e5b011bfc5`` (the only commit,
"init"):

- ``mmseg/models/segmentors/sar.py``, class ``SAR(EncoderDecoder)``: SAR
  lives in the *segmentor*, so its state sits at the top level of the state
  dict, next to ``backbone.*`` / ``decode_head.*`` / ``auxiliary_head.*``.
  With ``K = decode_head.num_classes`` and ``C = decode_head.channels``
  (lines 43-48, the last head when ``decode_head`` is a ``ModuleList``):

  ============================== ============================ ==============
  reference key (line)           what it is                   shape
  ============================== ============================ ==============
  ``random_center`` (49)         fixed anchors, ``randn``     K x C
  ``center_lbl`` (50)            ``arange(K)``                K
  ``local_iter`` (51, 161)       iteration counter            1
  ``projecter_linear.0.*`` (53)  ``nn.Linear(C, C)``          C x C, C
  ``projecter_linear.1.*`` (54)  SyncBN (``norm_cfg``, l. 52) C (+ counter)
  ``projecter_linear.3.*`` (56)  ``nn.Linear(C, C)``          C x C, C
  ``projecter_linear.4.*`` (57)  SyncBN                       C (+ counter)
  ``projecter.conv.weight``      ``ConvModule(C, C, 1)``      C x C x 1 x 1
  (59-64)                        conv, no bias (norm follows)
  ``projecter.bn.*`` (59-64)     its SyncBN                   C (+ counter)
  ``update_flag`` (66, 94-96)    0, set to 1 when the gate    scalar
                                 first passes
  ``momentum_center_feat``       EMA of the embedded anchors  K x C
  (67, 95, 98)                   (semantic anchors)
  ============================== ============================ ==============

  (``projecter_linear.2`` and ``.5`` are ReLUs without state.) Lines 75-78
  apply ``projecter_linear`` then ``projecter`` to ``random_center`` and
  classify the result with ``decode_head.conv_seg``.
- ``mmseg/models/decode_heads/fcn_head_w_feat.py`` (``FCNHeadWFeat``, the
  head of every config in ``report_cfgs/hrnet/*_SAR.py``), lines 39-65:
  ``convs.*`` and ``conv_cat.*`` as in MMSeg's ``FCNHead``;
  ``mmseg/models/decode_heads/decode_head.py`` line 131: ``conv_seg``
  (``nn.Conv2d(channels, num_classes, 1)``). The decode head's entries are
  therefore MMSeg's own, under ``decode_head.`` (``decode_head.<N>.`` in a
  cascade).

Mapping to this plug-in (``SARHead`` at ``P`` = ``decode_head.``, or the
last ``decode_head.<N>.`` of a cascade; ``SARLoss`` number ``I`` of its
``anchor_losses``, 0 unless ``--loss-index`` or ``--config`` says otherwise;
``S`` = ``P + 'anchor_losses.' + I + '.'``; names from
``sar_plugin/losses/sar.py``, ``AnchorProjector``):

- ``P<x>`` -> ``P<x>`` unchanged (a SAR model's head is MMSeg's head);
- ``projecter_linear.0`` / ``.1`` / ``.3`` / ``.4`` ->
  ``S projector.fc1`` / ``norm1`` / ``fc2`` / ``norm2``,
  ``projecter.conv`` / ``projecter.bn`` -> ``S projector.conv.conv`` /
  ``S projector.conv.bn``;
- ``random_center`` -> ``S anchors``,
  ``momentum_center_feat`` -> ``S semantic_anchors``;
- ``update_flag`` -> ``S num_updates`` and ``S gate_open``: the reference
  does not count gate passes, it only records that the semantic anchors were
  initialised. ``num_updates = 1 if update_flag else 0`` keeps what matters
  to ``SARLoss`` (0 means the next passing step *copies* the embedded
  anchors, more than 0 that it continues the EMA, as the reference does).
  ``gate_open = bool(update_flag)``: with ``gate='step'`` (the reference's
  behaviour) it is recomputed on every training step before it is read, and
  with ``gate='latched'`` "a step has passed" is exactly ``update_flag``;
- ``center_lbl`` (always ``arange(K)``) and ``local_iter`` have no
  counterpart and are dropped (reported; ``local_iter`` is recorded in
  ``meta['converted_from']``);
- ``backbone.*``, ``neck.*``, ``auxiliary_head.*`` and the first heads of a
  cascade are kept unchanged.

Shapes are checked (``K x C`` anchors, ``C x C`` linear layers, a
``K x C x 1 x 1`` ``conv_seg``...). Any other key is *unmapped*: reported,
and the conversion refused unless ``--allow-unmapped`` (they are then left
out). With ``--config`` (a sar_plugin config, e.g.
``configs/cityscapes/sar_fcn_hr48_4xb2-80k_cityscapes-512x1024.py`` for the
reference's ``hrnet_city_SAR.py``), the model is built (not initialised, no
download) to find ``P`` and ``I``, and the converted state dict must match
its keys and shapes exactly or the conversion is refused. The output is
``{'meta': ..., 'state_dict': ...}`` with plain-type ``meta``
(``dataset_meta`` from the reference's ``CLASSES`` / ``PALETTE``), for
``load_from`` or ``tools/test.py``; the optimizer state is not carried over.
"""
import argparse
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

import sar_plugin  # noqa: F401  (registers SARHead and SARLoss)
from sar_plugin.utils.loading import CheckpointReadError as ConversionError
from sar_plugin.utils.loading import (read_conversion_input,
                                      write_checkpoint)

PROG = 'sar_ref2plugin'
REFERENCE = 'geyanqi/SAR@2b9747eb27b95998265800b3e432c4e5b011bfc5'

LINEAR = ('weight', 'bias')
NORM = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
CONV = ('weight', )
# reference module -> (our module below the SARLoss, its entries)
PROJECTOR_MODULES = OrderedDict([
    ('projecter_linear.0', ('projector.fc1', LINEAR)),
    ('projecter_linear.1', ('projector.norm1', NORM)),
    ('projecter_linear.3', ('projector.fc2', LINEAR)),
    ('projecter_linear.4', ('projector.norm2', NORM)),
    ('projecter.conv', ('projector.conv.conv', CONV)),
    ('projecter.bn', ('projector.conv.bn', NORM)),
])
# reference buffer -> our buffer below the SARLoss
BUFFERS = {'random_center': 'anchors', 'momentum_center_feat':
           'semantic_anchors'}
FLAG = 'update_flag'
DROPPED = {
    'center_lbl': 'the anchors\' labels arange(K), recomputed by SARLoss',
    'local_iter': 'the reference\'s iteration counter',
}
KEPT_PREFIXES = ('backbone.', 'neck.', 'decode_head.', 'auxiliary_head.')
_CASCADE = re.compile(r'^decode_head\.(\d+)\.')


def reference_sar_keys() -> Dict[str, str]:
    """Every reference SAR key with state, mapped to its name below the
    ``SARLoss`` (``update_flag``, which becomes two buffers, excluded)."""
    keys = {ref: ours for ref, ours in BUFFERS.items()}
    for ref, (ours, names) in PROJECTOR_MODULES.items():
        for name in names:
            keys[f'{ref}.{name}'] = f'{ours}.{name}'
    return keys


def plain(value: Any) -> Any:
    """``value`` as plain Python types (lists for tuples and arrays), or
    None when it holds anything else."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        items = [plain(v) for v in value]
        return None if any(i is None for i in items) else items
    return None


def reference_head_prefix(keys: Sequence[str]) -> str:
    """``decode_head.`` or, for a cascade, the last ``decode_head.<N>.``."""
    head_keys = [k for k in keys if k.startswith('decode_head.')]
    indices = [_CASCADE.match(k) for k in head_keys]
    if head_keys and all(indices):
        return f'decode_head.{max(int(m.group(1)) for m in indices)}.'
    return 'decode_head.'


def check_shapes(state_dict: Mapping, head_prefix: str, source: str) -> None:
    """Check the reference SAR entries against ``random_center`` (K x C).

    Raises:
        ConversionError: On any shape that does not fit.
    """
    if state_dict['random_center'].dim() != 2:
        raise ConversionError(
            f'{source}: random_center has shape '
            f'{tuple(state_dict["random_center"].shape)}, expected K x C')
    k, c = state_dict['random_center'].shape
    expected = {'random_center': (k, c), 'momentum_center_feat': (k, c),
                'center_lbl': (k, ), 'local_iter': (1, )}
    for ref, (_, names) in PROJECTOR_MODULES.items():
        for name in names:
            if names is LINEAR:
                shape = (c, c) if name == 'weight' else (c, )
            elif names is CONV:
                shape = (c, c, 1, 1)
            else:
                shape = () if name == 'num_batches_tracked' else (c, )
            expected[f'{ref}.{name}'] = shape
    expected[head_prefix + 'conv_seg.weight'] = (k, c, 1, 1)
    expected[head_prefix + 'conv_seg.bias'] = (k, )
    wrong = [
        f'{key} {tuple(state_dict[key].shape)} (expected {shape})'
        for key, shape in expected.items()
        if key in state_dict and tuple(state_dict[key].shape) != shape
    ]
    if state_dict[FLAG].numel() != 1:
        wrong.append(f'{FLAG} {tuple(state_dict[FLAG].shape)} (expected a '
                     'single value)')
    if wrong:
        raise ConversionError(
            f'{source}: shapes do not fit K={k} classes and C={c} channels '
            '(from random_center): ' + '; '.join(wrong))


def convert_state_dict(
        state_dict: Mapping,
        source: str = '<checkpoint>',
        head_prefix: Optional[str] = None,
        loss_index: int = 0,
        allow_unmapped: bool = False) -> Tuple['OrderedDict', Dict]:
    """The plug-in's state dict of a reference SAR state dict.

    Args:
        state_dict (Mapping): State dict of the reference ``SAR`` segmentor.
        source (str): Name used in messages.
        head_prefix (str, optional): Where the ``SARHead`` is
            (``decode_head.``, ``decode_head.1.``); found from the keys when
            None.
        loss_index (int): Index of the ``SARLoss`` in ``anchor_losses``.
        allow_unmapped (bool): Leave unmapped keys out instead of refusing.

    Returns:
        Tuple[OrderedDict, dict]: The converted state dict and a report:
        ``head_prefix``, ``loss_prefix``, ``sar`` (reference key -> our key(s)), ``dropped``
        (known reference keys without counterpart), ``unmapped``,
        ``local_iter`` and ``update_flag``.

    Raises:
        ConversionError: When the state dict is not a reference SAR one
            (already in the plug-in's layout, SAR entries missing, wrong
            shapes) or has unmapped keys and ``allow_unmapped`` is False.
    """
    keys = list(state_dict)
    if any('.anchor_losses.' in k for k in keys):
        raise ConversionError(
            f'{source} is already in the sar_plugin layout '
            '(anchor_losses.* keys): nothing to convert')
    sar_keys = reference_sar_keys()
    present = [k for k in list(sar_keys) + [FLAG] if k in state_dict]
    if not present:
        raise ConversionError(
            f'{source} has no entries of the reference SAR segmentor '
            '(random_center, projecter_linear.*, projecter.*, update_flag, '
            'momentum_center_feat): not a geyanqi/SAR checkpoint. A plain '
            'MMSeg checkpoint needs no conversion: SARHead loads it with '
            'load_from')
    missing = [k for k in list(sar_keys) + [FLAG] if k not in state_dict]
    if missing:
        raise ConversionError(
            f'{source} lacks reference SAR entries: ' + ', '.join(missing))
    if head_prefix is None:
        head_prefix = reference_head_prefix(keys)
    if not any(k.startswith(head_prefix) for k in keys):
        raise ConversionError(
            f'{source} has no decode head entries ({head_prefix}*)')
    check_shapes(state_dict, head_prefix, source)

    loss_prefix = f'{head_prefix}anchor_losses.{loss_index}.'
    out: 'OrderedDict' = OrderedDict()  # the segmentor's own modules
    sar: 'OrderedDict' = OrderedDict()  # the SARLoss
    report: Dict[str, Any] = dict(
        head_prefix=head_prefix, loss_prefix=loss_prefix, sar={},
        dropped=[], unmapped=[], local_iter=None, update_flag=None)
    for key, value in state_dict.items():
        if key in sar_keys:
            sar[loss_prefix + sar_keys[key]] = value
            report['sar'][key] = loss_prefix + sar_keys[key]
        elif key == FLAG:
            flag = bool(value.reshape(-1)[0].item())
            report['update_flag'] = int(flag)
            sar[loss_prefix + 'gate_open'] = torch.tensor(flag)
            sar[loss_prefix + 'num_updates'] = torch.tensor(
                int(flag), dtype=torch.long)
            report['sar'][key] = (f'{loss_prefix}gate_open, '
                                  f'{loss_prefix}num_updates')
        elif key in DROPPED:
            report['dropped'].append(key)
            if key == 'local_iter':
                report['local_iter'] = int(value.reshape(-1)[0].item())
        elif key.startswith(KEPT_PREFIXES):
            out[key] = value
        else:
            report['unmapped'].append(key)
    out.update(sar)
    if report['unmapped'] and not allow_unmapped:
        raise ConversionError(
            f'{source} has {len(report["unmapped"])} keys this tool cannot '
            'map: ' + ', '.join(report['unmapped']) +
            ' (pass --allow-unmapped to leave them out)')
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        out._metadata = convert_metadata(metadata, head_prefix, loss_prefix)
    return out, report


def convert_metadata(metadata: Mapping, head_prefix: str,
                     loss_prefix: str) -> 'OrderedDict':
    """Rename the module metadata (norm layer versions) like the entries;
    modules without a counterpart are left out."""
    head = head_prefix[:-1]
    out = OrderedDict()
    for name, value in metadata.items():
        if name == '':
            out[name] = value
        elif name in PROJECTOR_MODULES:
            out[loss_prefix + PROJECTOR_MODULES[name][0]] = value
        elif name.startswith(KEPT_PREFIXES) or name + '.' in KEPT_PREFIXES:
            out[name] = value
    return out


def convert_meta(meta: Optional[Mapping], source: str,
                 report: Mapping) -> Dict[str, Any]:
    """MMSeg 1.x ``meta`` (plain types) from an MMSeg 0.x one."""
    meta = meta or {}
    out: Dict[str, Any] = {}
    dataset_meta = {}
    for old, new in (('CLASSES', 'classes'), ('PALETTE', 'palette')):
        value = plain(meta.get(old))
        if value is not None:
            dataset_meta[new] = value
    if dataset_meta:
        out['dataset_meta'] = dataset_meta
    reference_meta = {
        key: plain(meta[key])
        for key in ('mmseg_version', 'mmcv_version', 'epoch', 'iter', 'seed',
                    'exp_name', 'time')
        if key in meta and plain(meta[key]) is not None
    }
    out['converted_from'] = dict(
        tool=PROG,
        source=osp.basename(source),
        reference=REFERENCE,
        reference_meta=reference_meta,
        local_iter=report['local_iter'],
        update_flag=report['update_flag'])
    return out


def target_layout(config: str, cfg_options: Optional[dict],
                  loss_index: Optional[int]) -> Tuple[Dict, str, int]:
    """Build the model of a sar_plugin config (no weight init).

    Returns:
        Tuple[dict, str, int]: its state dict, its ``SARHead`` prefix and the
        index of its ``SARLoss``.

    Raises:
        ConversionError: When the config has no single ``SARHead`` with a
            ``SARLoss``.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    from sar_plugin.utils import sync_bn_to_bn

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = cfg.model
    if not torch.cuda.is_available():
        sync_bn_to_bn(model_cfg)
    model = MODELS.build(model_cfg)
    state_dict = model.state_dict()
    from sar_plugin.heads import SARHead
    prefixes = [f'{name}.' for name, module in model.named_modules()
                if isinstance(module, SARHead)]
    if len(prefixes) != 1:
        raise ConversionError(
            f'{config}: the model needs exactly one SARHead, found '
            f'{len(prefixes)}')
    prefix = prefixes[0]
    losses = model.get_submodule(prefix[:-1]).anchor_losses
    sar = [i for i, loss in enumerate(losses)
           if type(loss).__name__ == 'SARLoss']
    if loss_index is None:
        if len(sar) != 1:
            raise ConversionError(
                f'{config}: the SARHead at {prefix} has {len(sar)} SARLoss '
                'anchor losses; pass --loss-index')
        loss_index = sar[0]
    elif loss_index not in sar:
        raise ConversionError(
            f'{config}: anchor loss {loss_index} of the SARHead at {prefix} '
            'is not a SARLoss')
    return state_dict, prefix, loss_index


def compare_with_model(converted: Mapping, target: Mapping, config: str,
                       source: str = '<checkpoint>') -> None:
    """Refuse unless ``converted`` has exactly the keys and shapes of the
    model's state dict ``target``."""
    missing = [k for k in target if k not in converted]
    unexpected = [k for k in converted if k not in target]
    shapes = [
        f'{k} {tuple(converted[k].shape)} vs {tuple(target[k].shape)}'
        for k in converted
        if k in target and converted[k].shape != target[k].shape
    ]
    problems = []
    for name, items in (('missing in the converted checkpoint', missing),
                        ('not in the model', unexpected),
                        ('shape mismatch (converted vs model)', shapes)):
        if items:
            problems.append(f'{len(items)} {name}: ' + ', '.join(items[:20]) +
                            (' ...' if len(items) > 20 else ''))
    if problems:
        raise ConversionError(
            f'{source}: the converted state dict does not fit the model of '
            f'{config}: ' +
            '; '.join(problems))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Convert a checkpoint of the reference SAR implementation '
        '(geyanqi/SAR, MMSeg 0.29, segmentor type "SAR") into the layout of '
        'sar_plugin: decode_head.*, backbone, neck and auxiliary heads unchanged, the projector, '
        'fixed anchors and EMA semantic anchors -> '
        'decode_head.anchor_losses.<I>.*. See the module docstring for the full key map.')
    parser.add_argument(
        'src', metavar='IN', help='checkpoint of the reference implementation')
    parser.add_argument(
        'dst',
        metavar='OUT',
        help='where to write the converted checkpoint (meta + state_dict; '
        'parent directories are created, an existing file is overwritten)')
    parser.add_argument(
        '--config',
        metavar='CONFIG',
        help='sar_plugin config the checkpoint is meant for: its model is '
        'built to find the SARHead and its SARLoss, and the conversion is '
        'refused unless every key and shape matches that model')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        metavar='KEY=VALUE',
        help='override settings of --config, as key=value pairs (e.g. '
        'model.decode_head.head.num_classes=19)')
    parser.add_argument(
        '--loss-index',
        type=int,
        default=None,
        metavar='I',
        help='index I of the SARLoss in the SARHead\'s anchor_losses '
        '(default: the SARLoss of --config, else 0)')
    parser.add_argument(
        '--allow-unmapped',
        action='store_true',
        help='leave out keys this tool cannot map (reported) instead of '
        'refusing the checkpoint')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the conversion.

    Returns:
        int: 0 on success, 1 when the checkpoint was refused.
    """
    args = parse_args(argv)
    try:
        ckpt = read_conversion_input(args.src, args.dst)
        target, prefix, loss_index = None, None, args.loss_index
        if args.config:
            target, prefix, loss_index = target_layout(
                args.config, args.cfg_options, args.loss_index)
            ref_prefix = reference_head_prefix(list(ckpt['state_dict']))
            if ref_prefix != prefix:
                raise ConversionError(
                    f'{args.src} has its decode head at {ref_prefix}, the '
                    f'model of {args.config} its SARHead at {prefix}')
        state_dict, report = convert_state_dict(
            ckpt['state_dict'],
            source=args.src,
            head_prefix=prefix,
            loss_index=0 if loss_index is None else loss_index,
            allow_unmapped=args.allow_unmapped)
        if target is not None:
            compare_with_model(state_dict, target, args.config, args.src)
    except ConversionError as exc:
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 1
    print(f'{args.src}: decode head at {report["head_prefix"]}, '
          f'SAR state to {report["loss_prefix"]}')
    print(f'mapped {len(report["sar"])} reference SAR entries:')
    for ref, ours in report['sar'].items():
        print(f'  {ref} -> {ours}')
    for key in report['dropped']:
        print(f'dropped {key}: {DROPPED[key]}')
    if report['unmapped']:
        print(f'left out {len(report["unmapped"])} unmapped keys '
              '(--allow-unmapped): ' + ', '.join(report['unmapped']))
    if target is not None:
        print(f'every key and shape matches the model of {args.config}')
    out = {
        'meta': convert_meta(ckpt.get('meta'), args.src, report),
        'state_dict': state_dict
    }
    write_checkpoint(out, args.dst)
    print(f'wrote {args.dst} ({len(state_dict)} entries)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
