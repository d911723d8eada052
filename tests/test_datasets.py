"""The synthetic long-tailed set: deterministic, power-law, MMSeg layout,
read back by MMSeg's real pipeline."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from mmseg.registry import DATASETS

from sar_plugin.datasets import (class_shares, generate_synthetic_longtail,
                                 make_sample)


def test_class_shares_power_law():
    shares = class_shares(8, 100.0)
    assert shares.sum() == pytest.approx(1.0)
    assert shares[0] / shares[-1] == pytest.approx(100.0)
    ratios = shares[:-1] / shares[1:]
    assert np.allclose(ratios, ratios[0])  # geometric


def test_samples_are_deterministic_and_seeded():
    a = make_sample(3, 8, (48, 64), 100.0, seed=0)
    b = make_sample(3, 8, (48, 64), 100.0, seed=0)
    c = make_sample(3, 8, (48, 64), 100.0, seed=1)
    assert a[0].shape == (48, 64, 3) and a[1].shape == (48, 64)
    assert a[0].dtype == np.uint8 and a[1].dtype == np.uint8
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_generated_layout_and_long_tail(tmp_path):
    root = str(tmp_path / 'synth')
    manifest = generate_synthetic_longtail(
        root, num_classes=6, num_train=40, num_val=6, size=(64, 64))
    for split, n in (('train', 40), ('val', 6)):
        for sub in ('img_dir', 'ann_dir'):
            files = sorted(p for p in __import__('os').listdir(
                osp.join(root, sub, split)))
            assert len(files) == n and all(f.endswith('.png') for f in files)
    share = np.array(manifest['train_pixel_share'])
    assert share.argmax() == 0
    assert share[0] / share[-1] > 20  # clearly long-tailed
    assert (share > 0).all()  # every class present
    # a second call with the same parameters does not regenerate
    mtime = osp.getmtime(osp.join(root, 'manifest.json'))
    generate_synthetic_longtail(
        root, num_classes=6, num_train=40, num_val=6, size=(64, 64))
    assert osp.getmtime(osp.join(root, 'manifest.json')) == mtime
    # other parameters do
    other = generate_synthetic_longtail(
        root, num_classes=6, num_train=10, num_val=2, size=(64, 64))
    assert other['params']['num_train'] == 10
    with open(osp.join(root, 'manifest.json')) as f:
        assert json.load(f)['params']['num_train'] == 10


def test_held_out_test_split_leaves_train_and_val_as_they_were(tmp_path):
    """``num_test`` adds ``test``: the samples after train and val, so the
    other two splits (and the training counts) are byte-identical."""
    import cv2
    small = str(tmp_path / 'a')
    big = str(tmp_path / 'b')
    kw = dict(num_classes=5, num_train=8, num_val=3, size=(32, 32))
    first = generate_synthetic_longtail(small, **kw)
    second = generate_synthetic_longtail(big, num_test=4, **kw)
    assert not osp.isdir(osp.join(small, 'img_dir', 'test'))
    assert second['train_pixel_counts'] == first['train_pixel_counts']
    assert second['params']['num_test'] == 4
    for split in ('train', 'val'):
        for sub in ('img_dir', 'ann_dir'):
            names = sorted(os.listdir(osp.join(small, sub, split)))
            assert names == sorted(os.listdir(osp.join(big, sub, split)))
            for name in names:
                assert np.array_equal(
                    cv2.imread(osp.join(small, sub, split, name)),
                    cv2.imread(osp.join(big, sub, split, name)))
    test = sorted(os.listdir(osp.join(big, 'ann_dir', 'test')))
    assert test == [f'test_{i:05d}.png' for i in range(11, 15)]
    _, label = make_sample(11, 5, (32, 32), 100.0, 0)
    assert np.array_equal(
        cv2.imread(osp.join(big, 'ann_dir', 'test', test[0]),
                   cv2.IMREAD_UNCHANGED), label)


def test_dataset_reads_through_mmseg_pipeline(tmp_path):
    root = str(tmp_path / 'synth')
    ds = DATASETS.build(
        dict(
            type='SyntheticLongTailDataset',
            data_root=root,
            num_classes=5,
            num_train=6,
            num_val=2,
            size=(32, 48),
            data_prefix=dict(
                img_path='img_dir/train', seg_map_path='ann_dir/train'),
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations'),
                dict(type='PackSegInputs')
            ]))
    assert len(ds) == 6
    assert ds.metainfo['classes'] == ('c0', 'c1', 'c2', 'c3', 'c4')
    item = ds[0]
    assert tuple(item['inputs'].shape) == (3, 32, 48)
    seg = item['data_samples'].gt_sem_seg.data
    _, label = make_sample(0, 5, (32, 48), 100.0, 0)
    assert np.array_equal(seg[0].numpy(), label)
