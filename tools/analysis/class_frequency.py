"""Count the pixels (segmentation) or samples (classification) of every class
over the data set a config names.

    python tools/analysis/class_frequency.py CONFIG [--split train|val|test]
        [--out FILE] [--ignore-index N] [--cfg-options KEY=VALUE ...]

The dataset is the ``<split>_dataloader.dataset`` of the config, built with
its own loading of annotations only: the pipeline keeps the annotation
loaders (``LoadAnnotations``... with the dataset's ``reduce_zero_label`` and
``label_map``) and drops image loading and every augmentation
(``RandomResize``, ``RandomCrop``, ``RandomFlip``,
``PhotoMetricDistortion``...), so each label pixel is counted once, as
stored. ``ConcatDataset`` parts are all counted, ``RepeatDataset`` /
``ClassBalancedDataset`` wrappers are unwrapped (each image counted once).
Pixels equal to the ignore index (the dataset's ``ignore_index``, 255 by
default) are not counted; other labels outside ``[0, K)`` are reported.

Writes JSON ``{classes, counts, frequency, samples_per_class, num_samples,
split, config, ignore_index}`` (``frequency = counts / sum(counts)``,
``samples_per_class`` = number of images containing the class) to
``--out`` (default ``work_dirs/<config name>/class_frequency_<split>.json``)
and prints a table. Counting is done by a per-sample *label counter*:
:class:`PixelLabelCounter` over the annotation pipeline's ``gt_seg_map``, or,
for a classification data set (data infos with a ``gt_label``: CIFAR(-LT),
image lists), :class:`SampleLabelCounter` over the data infos themselves
(no image is loaded; ``counts`` are then images per class and
``samples_per_class`` equals ``counts``). The record's ``unit`` says which.
"""
import argparse
import copy
import json
import os
import os.path as osp
from typing import Dict, List

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar

import sar_plugin  # noqa: F401  (registers the plug-in)

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
    from mmseg.registry import DATASETS
    key = f'{split}_dataloader'
    if key not in cfg or cfg[key] is None:
        raise KeyError(f'the config has no {key}')
    dataset_cfg = strip_dataset_cfg(cfg[key]['dataset'])
    return DATASETS.build(dataset_cfg)


def count_classes(cfg: Config, split: str = 'train',
                  ignore_index=None) -> Dict:
    """Run the counter over the dataset of ``split``; returns the record."""
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
    bar = ProgressBar(len(dataset))
    for i in range(len(dataset)):
        counter(dataset.get_data_info(i) if per_sample else dataset[i])
        bar.update()
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


def parse_args():
    parser = argparse.ArgumentParser(
        description='Per-class pixel (or sample) counts of a config\'s data '
        'set')
    parser.add_argument('config', help='config file')
    parser.add_argument('--split', default='train',
                        choices=['train', 'val', 'test'])
    parser.add_argument('--out', help='output JSON file')
    parser.add_argument('--ignore-index', type=int, default=None,
                        help="default: the dataset's ignore_index (255)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    record = count_classes(cfg, args.split, args.ignore_index)
    out = args.out or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0],
        f'class_frequency_{args.split}.json')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(record, f, indent=2)
    width = max(len(str(c)) for c in record['classes'])
    print(f"{'class':<{width}}  {record['unit']:>12}  {'share %':>8}")
    for name, n, p in zip(record['classes'], record['counts'],
                          record['frequency']):
        print(f'{name:<{width}}  {n:>12d}  {p * 100:>8.3f}')
    if record['out_of_range_pixels']:
        print(f"warning: {record['out_of_range_pixels']} {record['unit']} "
              'with labels outside [0, K) and != ignore_index were not '
              'counted')
    print(f'written to {out}')


if __name__ == '__main__':
    main()
