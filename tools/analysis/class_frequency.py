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
import json
import os
import os.path as osp

from mmengine.config import Config, DictAction

import sar_plugin  # noqa: F401  (registers the plug-in)
from sar_plugin.evaluation.class_counts import count_classes


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file')
    parser.add_argument('--split', default='train',
                        choices=['train', 'val', 'test'],
                        help='whose <split>_dataloader.dataset is counted '
                        '(default: train, the split the buckets are '
                        'defined on)')
    parser.add_argument('--out', help='output JSON file (default: '
                        'work_dirs/<config name>/class_frequency_<split>'
                        '.json)')
    parser.add_argument('--ignore-index', type=int, default=None,
                        help="label not counted (default: the dataset's "
                        'ignore_index, 255)')
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
