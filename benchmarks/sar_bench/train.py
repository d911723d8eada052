"""Whole training steps of a config with and without its anchor losses.

The variants are built from one config:

- ``plain``: every ``SARHead`` replaced by the head it wraps and every
  other ``anchor_losses`` emptied (``AnchorClsHead``): the model a user
  would train without the plug-in;
- ``anchors``: the config as it is;
- ``anchors, no label checks``: the same with ``validate_labels=False`` in
  the wrappers and the losses (the checks' cost, one host sync each).

Each variant gets its own model (same seed), its own optimizer from the
config's ``optim_wrapper`` and the same pre-loaded, pre-processed batch of
random images and labels, so data loading is excluded and the model's own
cost is compared. A step is forward, loss, backward and optimizer step,
exactly as ``BaseModel.train_step`` does it after the data preprocessor.
"""
import copy
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, ConfigDict
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from sar_plugin.structures import ClsDataSample
from sar_plugin.utils.sync_bn import sync_bn_to_bn

from .measure import Case, Result, measure, paired_ratio

MiB = 2**20
PLAIN, ANCHORS, NO_CHECKS = 'plain', 'anchors', 'anchors, no label checks'


def _plain(cfg) -> dict:
    """A deep copy of a (Config)dict as plain dicts and lists."""
    return copy.deepcopy(cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg)


def strip_anchor_losses(cfg) -> Tuple[dict, int]:
    """A copy of a model config without anchor losses (see the module
    docstring) and how many places were changed."""
    changed = 0

    def walk(node):
        nonlocal changed
        if isinstance(node, dict):
            if node.get('type') == 'SARHead':
                changed += 1
                return walk(node['head'])
            node = {key: walk(value) for key, value in node.items()}
            if node.get('anchor_losses'):
                node['anchor_losses'] = []
                changed += 1
            return node
        if isinstance(node, (list, tuple)):
            return [walk(value) for value in node]
        return node

    return walk(_plain(cfg)), changed


def without_label_checks(cfg) -> dict:
    """A copy of a model config with ``validate_labels=False`` in every
    ``SARHead`` / ``AnchorClsHead`` and every anchor loss."""
    cfg = _plain(cfg)

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get('type') in ('SARHead', 'AnchorClsHead'):
                node['validate_labels'] = False
                for loss in _as_list(node.get('anchor_losses')):
                    loss['validate_labels'] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(cfg)
    return cfg


def _as_list(x) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def model_variants(cfg: Config) -> Dict[str, dict]:
    """``{name: model config}`` of the variants to compare.

    Raises:
        ValueError: The config has no anchor losses to compare against.
    """
    plain, changed = strip_anchor_losses(cfg.model)
    if not changed:
        raise ValueError(
            'the config has no anchor losses (no SARHead and no non-empty '
            '`anchor_losses`): there is nothing to compare its training '
            'step against')
    return {PLAIN: plain, ANCHORS: _plain(cfg.model),
            NO_CHECKS: without_label_checks(cfg.model)}


def synthetic_batch(model, batch_size: int, size: Tuple[int, int],
                    num_classes: int, seed: int = 0,
                    ignore_fraction: float = 0.05) -> dict:
    """A raw batch (``inputs`` uint8 images, ``data_samples``) of random
    images and labels, ~``ignore_fraction`` of the pixels labelled 255.

    Segmentation models (with a ``decode_head``) get ``SegDataSample`` with
    ``gt_sem_seg``; classifiers get ``ClsDataSample`` with ``gt_label``.
    """
    h, w = size
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for i in range(batch_size):
        inputs.append(torch.randint(256, (3, h, w), generator=gen,
                                    dtype=torch.uint8))
        meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                    img_path=f'synthetic_{i}.png')
        if hasattr(model, 'decode_head'):
            label = torch.randint(num_classes, (1, h, w), generator=gen)
            label[torch.rand(1, h, w, generator=gen) < ignore_fraction] = 255
            sample = SegDataSample(metainfo=dict(
                meta, seg_map_path=f'synthetic_{i}_label.png'))
            sample.gt_sem_seg = PixelData(data=label)
        else:
            sample = ClsDataSample(metainfo=meta).set_gt_label(
                int(torch.randint(num_classes, (1,), generator=gen)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def num_classes_of(model) -> int:
    head = getattr(model, 'decode_head', None) or getattr(model, 'head')
    return int(head.num_classes)


def train_step_case(model_cfg: dict, optim_cfg: dict, batch_size: int,
                    size: Tuple[int, int], device: str,
                    seed: int = 0) -> Case:
    """A :class:`Case` running one training step of a freshly built model
    on a fixed pre-processed batch."""
    torch.manual_seed(seed)
    # a ConfigDict: MMSeg's segmentors set attributes on their sub-configs
    model = MODELS.build(ConfigDict(model_cfg)).to(device)
    model.train()
    optim = build_optim_wrapper(model, copy.deepcopy(optim_cfg))
    raw = synthetic_batch(model, batch_size, size, num_classes_of(model),
                          seed)
    with torch.no_grad():
        data = model.data_preprocessor(raw, True)

    def run() -> None:
        with optim.optim_context(model):
            losses = model._run_forward(data, mode='loss')
        parsed, _ = model.parse_losses(losses)
        optim.update_params(parsed)

    return Case(run=run, device=device)


def train_table(cfg: Config, rounds: int, warmup: int, device: str,
                batch_size: Optional[int] = None,
                size: Optional[Sequence[int]] = None,
                variants: Optional[Sequence[str]] = None,
                progress: Optional[Callable[[str], None]] = None
                ) -> Tuple[List[dict], Dict[str, Result]]:
    """Seconds per training step and peak memory of the variants.

    Args:
        cfg (Config): The config (with its anchor losses).
        rounds (int): Timed steps per variant (interleaved).
        warmup (int): Untimed steps first.
        device (str): ``'cpu'`` or ``'cuda'``.
        batch_size (int, optional): Default: the config's
            ``train_dataloader.batch_size``.
        size (tuple, optional): ``(H, W)`` of the images. Default: the
            config's ``crop_size``. The data preprocessor pads to it.
        variants (list, optional): Names to run (default: all three).

    Returns:
        Tuple[list, dict]: One row per variant (``variant``,
        ``s_per_iter`` (median), ``best_s``, ``x_plain``
        (:func:`~.measure.paired_ratio` to plain), ``peak_mib``,
        ``mem_x_plain``, ``times_s``: every timed step in round order)
        and the raw results.
    """
    init_default_scope('mmseg')
    cfg = copy.deepcopy(cfg)
    if not device.startswith('cuda'):
        sync_bn_to_bn(cfg.model)
    if batch_size is None:
        batch_size = int(cfg.train_dataloader.batch_size)
    if size is None:
        if cfg.get('crop_size') is None:
            raise ValueError('the config has no `crop_size`: give the image '
                             'size (--size H W)')
        size = cfg.crop_size
    size = (int(size[0]), int(size[1]))
    preprocessor = cfg.model.get('data_preprocessor')
    if preprocessor is not None and 'size' in preprocessor:
        preprocessor['size'] = size
    configs = model_variants(cfg)
    names = list(variants or configs)
    if PLAIN not in names:
        names.insert(0, PLAIN)
    unknown = set(names) - set(configs)
    if unknown:
        raise ValueError(f'unknown variant(s) {sorted(unknown)}; choose from '
                         f'{list(configs)}')
    cases = {name: train_step_case(configs[name], cfg.optim_wrapper,
                                   batch_size, size, device)
             for name in names}
    results = measure(cases, rounds, warmup, progress=progress)
    plain = results[PLAIN]
    rows = [dict(variant=name, s_per_iter=r.median, best_s=r.best,
                 x_plain=paired_ratio(r, plain), peak_mib=r.peak / MiB,
                 mem_x_plain=r.peak / plain.peak, times_s=r.times)
            for name, r in results.items()]
    return rows, results
