"""CamVid: the dataset on a tiny copy of the SegNet layout (void -> ignore),
and every CamVid config trained one iteration and evaluated through
MMEngine's Runner on it. The real set is ../shared/data/camvid; when it is
there, the dataset is also checked on it."""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from mmseg.registry import DATASETS

from conftest import REPO_ROOT
from sar_plugin.heads import SARHead
from sar_plugin.utils import prepare_config

CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'camvid', '*.py'))
                 + glob.glob(osp.join(REPO_ROOT, 'configs', 'camvid',
                                      'heldout', '*.py')))
# the frame name prefixes are CamVid's videos: the held-out configs train on
# 0006R0 + 0016E5 and test on 0001TP
SEQUENCES = ('0001TP', '0006R0', '0016E5')
SHARED = osp.join(REPO_ROOT, '..', 'shared', 'data', 'camvid')
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')]


@pytest.fixture(scope='module')
def tiny_camvid(tmp_path_factory):
    """SegNet layout: img_dir/{train,val}/*.png RGB, ann_dir/... uint8 0..11."""
    root = tmp_path_factory.mktemp('camvid')
    rng = np.random.default_rng(0)
    for split, n in (('train', 3), ('val', 2)):
        for i in range(n):
            for sub in ('img_dir', 'ann_dir'):
                (root / sub / split).mkdir(parents=True, exist_ok=True)
            seq = SEQUENCES[i] if split == 'train' else '0016E5'
            name = f'{seq}_{i:06d}.png'
            img = rng.integers(0, 255, (72, 96, 3), dtype=np.uint8)
            ann = rng.integers(0, 12, (72, 96), dtype=np.uint8)  # incl. void
            cv2.imwrite(str(root / 'img_dir' / split / name), img)
            cv2.imwrite(str(root / 'ann_dir' / split / name), ann)
    return str(root)


def build(root, split='train'):
    return DATASETS.build(dict(
        type='CamVidDataset', data_root=root,
        data_prefix=dict(img_path=f'img_dir/{split}',
                         seg_map_path=f'ann_dir/{split}'),
        pipeline=PIPELINE))


def test_void_label_becomes_ignore(tiny_camvid):
    ds = build(tiny_camvid)
    assert len(ds) == 3 and len(ds.metainfo['classes']) == 11
    item = ds[0]
    seg = item['data_samples'].gt_sem_seg.data[0].numpy()
    raw = cv2.imread(item['data_samples'].seg_map_path, cv2.IMREAD_UNCHANGED)
    assert (raw == 11).any()
    assert np.array_equal(seg == 255, raw == 11)
    assert np.array_equal(seg[raw != 11], raw[raw != 11])


def test_sequences_select_videos_by_prefix(tmp_path):
    for name in ('0001TP_000001', '0001TP_000002', '0006R0_f00930',
                 'Seq05VD_f00000'):
        for sub in ('img_dir', 'ann_dir'):
            (tmp_path / sub / 'train').mkdir(parents=True, exist_ok=True)
            img = np.zeros((8, 8, 3) if sub == 'img_dir' else (8, 8),
                           np.uint8)
            cv2.imwrite(str(tmp_path / sub / 'train' / f'{name}.png'), img)

    def stems(**kwargs):
        ds = DATASETS.build(dict(
            type='CamVidDataset', data_root=str(tmp_path),
            data_prefix=dict(img_path='img_dir/train',
                             seg_map_path='ann_dir/train'),
            pipeline=PIPELINE, **kwargs))
        return sorted(osp.basename(ds.get_data_info(i)['img_path'])
                      for i in range(len(ds)))

    assert len(stems()) == 4
    assert stems(sequences=['0001TP']) == ['0001TP_000001.png',
                                           '0001TP_000002.png']
    assert stems(sequences=('0006R0', 'Seq05VD')) == [
        '0006R0_f00930.png', 'Seq05VD_f00000.png']
    with pytest.raises(FileNotFoundError, match="0016E5.*img_dir/train"):
        stems(sequences=['0001TP', '0016E5'])


@pytest.mark.skipif(not osp.isdir(SHARED), reason='no ../shared/data/camvid')
def test_real_camvid_split_sizes_and_labels():
    train, val = build(SHARED, 'train'), build(SHARED, 'val')
    assert (len(train), len(val)) == (367, 101)
    seg = train[0]['data_samples'].gt_sem_seg.data.numpy()
    assert set(np.unique(seg)) <= set(range(11)) | {255}


def test_camvid_configs_exist():
    names = {osp.basename(c).split('_')[0] for c in CONFIGS}
    assert names >= {'fcn', 'sar', 'hal', 'ldmat', 'center', 'large-margin',
                     'ancm-euclidean', 'ancm-cosine', 'deeplabv3plus',
                     'pspnet'}


@pytest.mark.parametrize('config', CONFIGS, ids=osp.basename)
def test_camvid_config_trains_and_predicts(config, tiny_camvid, tmp_path):
    cfg = Config.fromfile(config)
    assert cfg.custom_imports.imports == ['sar_plugin']
    assert cfg.randomness.seed == 0
    cfg.model.pretrained = None
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = tiny_camvid
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    cfg.train_dataloader.batch_size = 2
    # a tiny crop: the pipelines' resize and crop sizes, and the padding
    for t in cfg.train_dataloader.dataset.pipeline:
        if t.type == 'RandomResize':
            t.scale = (96, 72)
        if t.type == 'RandomCrop':
            t.crop_size = (64, 64)
    for t in cfg.val_dataloader.dataset.pipeline + \
            cfg.test_dataloader.dataset.pipeline:
        if t.type == 'Resize':
            t.scale = (96, 72)
    cfg.model.data_preprocessor.size = (64, 64)
    cfg.train_cfg.max_iters = 1
    cfg.train_cfg.val_interval = 1
    cfg.default_hooks.checkpoint.interval = 1
    cfg.work_dir = str(tmp_path)
    prepare_config(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    logs = runner.message_hub.log_scalars
    assert 'val/mIoU' in logs and 'val/IoU.Bicyclist' in logs
    # long-tail evaluation: bucket mIoU from the committed frequency file
    # and the feature metric on the exported classifier input
    assert {'val/mIoU.head', 'val/mIoU.body', 'val/mIoU.tail'} & set(logs)
    assert 'val/feat/fisher' in logs and 'val/feat/intra_mean' in logs
    head = runner.model.decode_head
    if isinstance(head, SARHead):
        name = head.anchor_losses[0].loss_name
        assert any(k.startswith(f'train/decode.{name}') for k in logs)
