"""Data problems raise errors that name the file at fault (issue 10, item 10).

For every segmentation dataset the project ships configs for (CamVid, the
synthetic long-tailed set, Cityscapes, ADE20K), a tiny copy is written in the
real on-disk layout, the dataset is built from the shipped config's dataset
dict (``data_root`` overridden) and its real pipeline is run:

1. a truncated label PNG -> ``OSError`` naming the label file;
2. an empty split (empty/missing image directory, wrong suffix, empty split
   file) -> ``FileNotFoundError`` naming the directory or split file and the
   suffixes searched, also with ``lazy_init=True`` / ``test_mode=True``;
3. an image whose size differs from its label -> ``ValueError`` naming both
   files and both shapes (train pipelines load the label right after the
   image, val pipelines resize the image first);
4. a 3-channel label PNG -> ``ValueError`` naming the file;

and valid data loads exactly as with MMSeg's stock ``LoadAnnotations``.
"""
import copy
import functools
import os
import os.path as osp
import random

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmseg.datasets import ADE20KDataset as MMSegADE20KDataset
from mmseg.datasets import CityscapesDataset as MMSegCityscapesDataset
from mmseg.datasets.transforms import LoadAnnotations as StockLoadAnnotations
from mmseg.registry import DATASETS, TRANSFORMS

from conftest import REPO_ROOT
from test_configs import _image, _labels, _write

CONFIGS = dict(
    camvid='configs/camvid/fcn_m-v2-d8_1xb4-4k_camvid-180x240.py',
    synthetic='configs/demo/fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py',
    cityscapes='configs/cityscapes/fcn_hr48_4xb2-80k_cityscapes-512x1024.py',
    ade20k='configs/ade20k/fcn_hr48_4xb4-160k_ade20k-512x512.py')
KINDS = tuple(CONFIGS)
LOADERS = ('train_dataloader', 'val_dataloader')
# the tiny synthetic set (the config's generator arguments, shrunk)
SYNTHETIC = dict(num_classes=8, num_train=2, num_val=2, num_test=2,
                 size=(48, 64))
SHAPE = dict(camvid=(72, 96), cityscapes=(96, 192), ade20k=(96, 96),
             synthetic=SYNTHETIC['size'])


# ----------------------------------------------------------------- data
def write_layout(kind, root):
    """Two samples per split of ``kind`` in its real layout under ``root``.

    The synthetic set writes itself when its dataset is first built.
    """
    rng = np.random.default_rng(0)
    shape = SHAPE[kind]
    if kind == 'camvid':  # img_dir/<split>/*.png, ann_dir/... ids 0..11
        for split in ('train', 'val'):
            for i in range(2):
                label = _labels(rng, shape, 12, None)
                name = f'0001TP_{i:06d}.png'
                _write(osp.join(root, 'ann_dir', split, name), label)
                _write(osp.join(root, 'img_dir', split, name),
                       _image(rng, label))
    elif kind == 'cityscapes':  # leftImg8bit/<split>/<city>/..., gtFine/...
        for split in ('train', 'val'):
            for i, city in enumerate(('aachen', 'bremen')):
                stem = f'{city}_{i:06d}_{19 + i:06d}'
                label = _labels(rng, shape, 19, 255)
                _write(osp.join(root, 'gtFine', split, city,
                                f'{stem}_gtFine_labelTrainIds.png'), label)
                _write(osp.join(root, 'leftImg8bit', split, city,
                                f'{stem}_leftImg8bit.png'), _image(rng, label))
    elif kind == 'ade20k':  # images/<split>/*.jpg, annotations/<split>/*.png
        for split, prefix in (('training', 'ADE_train'),
                              ('validation', 'ADE_val')):
            for i in range(1, 3):
                label = _labels(rng, shape, 151, 0)
                _write(osp.join(root, 'annotations', split,
                                f'{prefix}_{i:08d}.png'), label)
                _write(osp.join(root, 'images', split,
                                f'{prefix}_{i:08d}.jpg'), _image(rng, label))


@functools.lru_cache(maxsize=None)
def dataset_cfg(kind, loader):
    """The dataset dict of ``loader`` in the shipped config of ``kind``."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, CONFIGS[kind]))
    return cfg[loader].dataset.to_dict()


def build(kind, root, loader='train_dataloader', **overrides):
    """The dataset of the shipped config, on ``root``, built by the registry
    in the config's scope (``default_scope='sar_plugin'``: the checking
    classes sar_plugin keeps under MMSeg's names)."""
    cfg = copy.deepcopy(dataset_cfg(kind, loader))
    cfg.setdefault('_scope_', 'sar_plugin')
    cfg['data_root'] = root
    if kind == 'synthetic':
        cfg.update(SYNTHETIC)
    cfg.update(overrides)
    return DATASETS.build(cfg)


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def root(kind, tmp_path):
    root = str(tmp_path / kind)
    write_layout(kind, root)
    if kind == 'synthetic':
        build(kind, root)  # generates the set
    return root


def files_of(dataset, index=0):
    info = dataset.get_data_info(index)
    return info['img_path'], info['seg_map_path']


def label_shape(path):
    return cv2.imread(path, cv2.IMREAD_UNCHANGED).shape


# ------------------------------------------------- 1. truncated label
@pytest.mark.parametrize('loader', LOADERS)
def test_truncated_label_names_the_file(kind, root, loader):
    ds = build(kind, root, loader)
    _, seg = files_of(ds)
    data = open(seg, 'rb').read()
    with open(seg, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(OSError) as info:
        ds[0]
    assert seg in str(info.value)
    assert 'truncated' in str(info.value)  # the decoder's reason is kept


def test_missing_label_still_names_the_file(kind, root):
    ds = build(kind, root)
    _, seg = files_of(ds)
    os.remove(seg)
    with pytest.raises(FileNotFoundError, match=seg):
        ds[0]


# ------------------------------------------------------ 2. empty split
@pytest.mark.parametrize('case', ['empty_dir', 'missing_dir', 'wrong_suffix'])
def test_empty_split_names_directory_and_suffix(kind, root, case):
    ds = build(kind, root, lazy_init=True)
    suffix, img_dir = ds.img_suffix, ds.data_prefix['img_path']
    overrides = {}
    if case == 'empty_dir':
        img_dir = osp.join(root, 'empty_split')
        os.makedirs(img_dir)
    elif case == 'missing_dir':
        img_dir = osp.join(root, 'no_such_split')
    else:
        suffix = '.bmp'
        overrides['img_suffix'] = suffix
    if case != 'wrong_suffix':
        overrides['data_prefix'] = dict(
            img_path=img_dir, seg_map_path=ds.data_prefix['seg_map_path'])
    with pytest.raises(FileNotFoundError) as info:
        build(kind, root, **overrides)
    message = str(info.value)
    assert img_dir in message and f"'{suffix}'" in message, message
    assert ds.seg_map_suffix in message
    if case == 'wrong_suffix':  # what is there instead
        assert 'other file(s)' in message
    if case == 'missing_dir':
        assert 'does not exist' in message


@pytest.mark.parametrize('kind', ['camvid', 'cityscapes'])
def test_empty_split_file_names_the_file(kind, root):
    split = osp.join(root, 'empty_split.txt')
    open(split, 'w').close()
    with pytest.raises(FileNotFoundError) as info:
        build(kind, root, ann_file='empty_split.txt')
    assert split in str(info.value)
    assert build(kind, root, lazy_init=True).img_suffix in str(info.value)


def test_empty_split_with_lazy_init_and_test_mode(kind, root):
    empty = osp.join(root, 'empty_split')
    os.makedirs(empty)
    prefix = dict(img_path=empty, seg_map_path=empty)
    ds = build(kind, root, data_prefix=prefix, lazy_init=True)  # no error
    with pytest.raises(FileNotFoundError, match=empty):
        len(ds)
    with pytest.raises(FileNotFoundError, match=empty):
        build(kind, root, 'val_dataloader', data_prefix=prefix,
              test_mode=True)


def test_split_file_and_directory_scan_still_work(root, kind):
    """``ann_file=''`` lists the directory, a split file its lines."""
    ds = build(kind, root)
    assert len(ds) == 2
    if kind in ('camvid', 'cityscapes'):
        img_dir = ds.data_prefix['img_path']
        names = [osp.relpath(files_of(ds, i)[0], img_dir)[:-len(
            ds.img_suffix)] for i in range(len(ds))]
        with open(osp.join(root, 'split.txt'), 'w') as f:
            f.write('\n'.join(names[1:]) + '\n')
        listed = build(kind, root, ann_file='split.txt')
        assert len(listed) == 1
        assert listed.get_data_info(0)['img_path'] == files_of(ds, 1)[0]


# ----------------------------------------- 3. image size != label size
@pytest.mark.parametrize('loader', LOADERS)
@pytest.mark.parametrize('factor', [0.5, 2], ids=['smaller', 'larger'])
def test_image_label_size_mismatch_names_both(kind, root, loader, factor):
    ds = build(kind, root, loader)
    img, seg = files_of(ds)
    h, w = label_shape(seg)
    small = cv2.resize(cv2.imread(img), (int(w * factor), int(h * factor)))
    _write(img, small)
    with pytest.raises(ValueError) as info:
        ds[0]
    message = str(info.value)
    assert img in message and seg in message, message
    assert f'{h}x{w}' in message
    assert f'{int(h * factor)}x{int(w * factor)}' in message


def test_size_check_can_be_turned_off(tmp_path):
    root = str(tmp_path)
    write_layout('camvid', root)
    cfg = copy.deepcopy(dataset_cfg('camvid', 'val_dataloader'))
    for t in cfg['pipeline']:
        if t['type'] == 'LoadAnnotations':
            t['check_image_size'] = False
    ds = DATASETS.build(dict(cfg, data_root=root, _scope_='sar_plugin'))
    img, seg = files_of(ds)
    _write(img, cv2.imread(img)[::2, ::2])
    assert tuple(ds[0]['data_samples'].gt_sem_seg.shape) == label_shape(seg)


# --------------------------------------------------- 4. 3-channel label
@pytest.mark.parametrize('loader', LOADERS)
def test_rgb_label_names_the_file(kind, root, loader):
    ds = build(kind, root, loader)
    _, seg = files_of(ds)
    label = cv2.imread(seg, cv2.IMREAD_UNCHANGED)
    palette = np.random.default_rng(0).integers(0, 256, (256, 3))
    _write(seg, palette[label].astype(np.uint8))  # a colour rendering
    with pytest.raises(ValueError) as info:
        ds[0]
    assert seg in str(info.value)
    assert 'single-channel' in str(info.value)


# ------------------------------------------------ valid data unchanged
def with_stock_loader(pipeline):
    """``pipeline`` with MMSeg's own ``LoadAnnotations`` object in place of
    the registry's."""
    out = []
    for t in pipeline:
        if t['type'] == 'LoadAnnotations':
            args = {k: v for k, v in t.items() if k != 'type'}
            t = StockLoadAnnotations(**args)
        out.append(t)
    return out


@pytest.mark.parametrize('loader', LOADERS)
def test_valid_data_loads_as_with_mmseg(kind, root, loader):
    ours = build(kind, root, loader)
    stock = build(kind, root, loader, pipeline=with_stock_loader(
        dataset_cfg(kind, loader)['pipeline']))
    assert len(ours) == len(stock) == 2
    for i in range(len(ours)):
        got = []
        for ds in (ours, stock):
            random.seed(i)
            np.random.seed(i)  # the same random resize/crop/flip/colour
            got.append(ds[i])
        a, b = got
        assert torch.equal(a['inputs'], b['inputs'])
        assert torch.equal(a['data_samples'].gt_sem_seg.data,
                           b['data_samples'].gt_sem_seg.data)
        assert a['data_samples'].metainfo == b['data_samples'].metainfo


def test_registry_gives_the_checking_classes():
    # the checking classes are sar_plugin's, under MMSeg's names in its scope
    t = TRANSFORMS.build(dict(type='sar_plugin.LoadAnnotations',
                              reduce_zero_label=True))
    assert isinstance(t, StockLoadAnnotations) and t.check_image_size
    assert t.reduce_zero_label is True
    assert 'check_image_size=True' in repr(t)
    assert issubclass(DATASETS.get('sar_plugin.CityscapesDataset'),
                      MMSegCityscapesDataset)
    assert issubclass(DATASETS.get('sar_plugin.ADE20KDataset'),
                      MMSegADE20KDataset)
    for name in ('sar_plugin.CityscapesDataset', 'sar_plugin.ADE20KDataset',
                 'CamVidDataset', 'SyntheticLongTailDataset'):
        assert hasattr(DATASETS.get(name), 'load_data_list')
        assert 'NonEmptySplitMixin' in [
            c.__name__ for c in DATASETS.get(name).__mro__], name
