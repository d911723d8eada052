"""Per-class pixel (segmentation) or sample (classification) counts over the
data set of a config's split: the source of the long-tail buckets.

Used by ``tools/analysis/class_frequency.py`` and, for
``class_frequency='auto'``, by :class:`~sar_plugin.engine.LongTailEvalHook`.
The dataset is built with its annotation loaders only (images are never
read, augmentations dropped), wrappers unwrapped, so every label pixel is
counted once as stored, after the dataset's ``reduce_zero_label`` and
``label_map``.
"""
import copy
from typing import Dict, List

import numpy as np
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar

WRAPPERS = ('RepeatDataset', 'ClassBalancedDataset')


class PixelLabelCounter:
    """Counts label pixels of one pipeline output (``gt_seg_map``)."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.counts = np.zeros(num_classes, np.int64)
        self.samples = np.zeros(num_classes, np.int64)
        self.out_of_range = 0
        self.num_samples = 0

    def __call__(self, results: dict) -> None:
        label = np.asarray(results['gt_seg_map']).reshape(-1).astype(np.int64)
        label = label[label != self.ignore_index]
        bad = (label < 0) | (label >= self.num_classes)
        self.out_of_range += int(bad.sum())
        counts = np.bincount(label[~bad], minlength=self.num_classes)
        self.counts += counts
        self.samples += counts > 0
        self.num_samples += 1


class SampleLabelCounter(PixelLabelCounter):
    """Counts the image-level ``gt_label`` of one data info."""

    def __call__(self, results: dict) -> None:
        label = int(np.asarray(results['gt_label']).reshape(-1)[0])
        if 0 <= label < self.num_classes:
            self.counts[label] += 1
            self.samples[label] += 1
        else:
            self.out_of_range += 1
        self.num_samples += 1


def is_classification(dataset) -> bool:
    """Whether the data infos carry image-level labels."""
    return len(dataset) > 0 and 'gt_label' in dataset.get_data_info(0)


def annotation_pipeline(pipeline: List[dict]) -> List[dict]:
    """Keep only the annotation loaders (all augmentation dropped)."""
    kept = [copy.deepcopy(t) for t in pipeline or []
            if 'Annotation' in str(t.get('type', ''))]
    return kept or [dict(type='LoadAnnotations')]


def strip_dataset_cfg(cfg: dict) -> dict:
    """The dataset config with annotation-only pipelines, wrappers off."""
    cfg = copy.deepcopy(cfg)
    if cfg.get('type') in WRAPPERS:
        return strip_dataset_cfg(cfg['dataset'])
    if cfg.get('type') == 'ConcatDataset':
        cfg['datasets'] = [strip_dataset_cfg(d) for d in cfg['datasets']]
        return cfg
    cfg['pipeline'] = annotation_pipeline(cfg.get('pipeline'))
    return cfg


def build_dataset(cfg: Config, split: str):
    """The ``<split>_dataloader`` dataset, annotations only."""
    from mmseg.registry import DATASETS
    key = f'{split}_dataloader'
    if key not in cfg or cfg[key] is None:
        raise KeyError(f'{cfg.filename}: the config has no {key} to count '
                       'the classes of')
    dataset_cfg = strip_dataset_cfg(cfg[key]['dataset'])
    return DATASETS.build(dataset_cfg)


def count_classes(cfg: Config, split: str = 'train', ignore_index=None,
                  progress: bool = True) -> Dict:
    """Count the classes of ``split``'s dataset.

    Args:
        cfg (Config): The config.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        ignore_index (int, optional): Not counted; ``None``: the dataset's
            ``ignore_index`` (255 by default).
        progress (bool): Show a progress bar.

    Returns:
        dict: ``{classes, counts, frequency, samples_per_class,
        num_samples, out_of_range_pixels, unit, split, config,
        ignore_index}``, the JSON record of
        ``tools/analysis/class_frequency.py``.
    """
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    dataset = build_dataset(cfg, split)
    classes = list(dataset.metainfo['classes'])
    if ignore_index is None:
        first = dataset.datasets[0] if hasattr(dataset, 'datasets') \
            else dataset
        ignore_index = getattr(first, 'ignore_index', 255)
    per_sample = is_classification(dataset)
    counter = (SampleLabelCounter if per_sample else PixelLabelCounter)(
        len(classes), ignore_index)
    bar = ProgressBar(len(dataset)) if progress else None
    for i in range(len(dataset)):
        counter(dataset.get_data_info(i) if per_sample else dataset[i])
        if bar is not None:
            bar.update()
    if bar is not None:
        print()
    total = counter.counts.sum()
    frequency = counter.counts / total if total else \
        np.zeros(len(classes))
    return dict(
        classes=classes,
        counts=counter.counts.tolist(),
        frequency=frequency.tolist(),
        samples_per_class=counter.samples.tolist(),
        num_samples=counter.num_samples,
        out_of_range_pixels=counter.out_of_range,
        unit='samples' if per_sample else 'pixels',
        split=split,
        config=cfg.filename,
        ignore_index=int(ignore_index))


