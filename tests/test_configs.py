"""The shipped Cityscapes and ADE20K configs (``configs/cityscapes``,
``configs/ade20k``): every SAR config is its baseline with only the decode
head wrapped, every config carries the shared run settings, and every config
trains one iteration and validates through MMEngine's ``Runner`` on a tiny
data set written in the real on-disk layout of its data set.

Parametrised over a glob, so a new config file gets its tests without any
change here (files starting with ``_`` are skipped).
"""
import ast
import copy
import glob
import json
import os
import os.path as osp
import re
import time

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO_ROOT
from sar_plugin.heads import SARHead

DATASETS = ('cityscapes', 'ade20k')
CONFIGS = sorted(
    path for ds in DATASETS
    for path in glob.glob(osp.join(REPO_ROOT, 'configs', ds, '*.py'))
    if not osp.basename(path).startswith('_'))
SAR_CONFIGS = [c for c in CONFIGS if osp.basename(c).startswith('sar_')]
MMSEG_CONFIGS = osp.join(
    osp.dirname(__import__('mmseg').__file__), '.mim', 'configs')

# SAR's hyper-parameters in the reference implementation (geyanqi/SAR). The
# SAR configs name only `dict(type='SARLoss')`: these are SARLoss's defaults,
# and its projector norm is filled in from the wrapped head's `norm_cfg`.
SAR_REFERENCE = dict(
    filter_conf=0.9,
    update_conf=0.8,
    momentum=0.999,
    anchor_weight=1.0,
    pull_weight=0.1)
# The (algorithm dir, baseline) pairs the docs promise, per data set.
EXPECTED = {
    'cityscapes': [
        'hrnet/fcn_hr48_4xb2-80k_cityscapes-512x1024',
        'deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024',
        'deeplabv3plus/deeplabv3plus_r101-d8_4xb2-80k_cityscapes-512x1024',
        'pspnet/pspnet_r50-d8_4xb2-80k_cityscapes-512x1024',
        'upernet/upernet_r50_4xb2-80k_cityscapes-512x1024',
        'segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024',
        'segformer/segformer_mit-b5_8xb1-160k_cityscapes-1024x1024',
        'ocrnet/ocrnet_hr48_4xb2-80k_cityscapes-512x1024',
    ],
    'ade20k': [
        'hrnet/fcn_hr48_4xb4-160k_ade20k-512x512',
        'deeplabv3plus/deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512',
        'deeplabv3plus/deeplabv3plus_r101-d8_4xb4-160k_ade20k-512x512',
        'pspnet/pspnet_r50-d8_4xb4-160k_ade20k-512x512',
        'upernet/upernet_r50_4xb4-160k_ade20k-512x512',
        'segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512',
        'segformer/segformer_mit-b5_8xb2-160k_ade20k-640x640',
        'ocrnet/ocrnet_hr48_4xb4-160k_ade20k-512x512',
    ],
}
NUM_CLASSES = dict(cityscapes=19, ade20k=150)

# Tiny run: crops (h, w), the resize scale used in place of MMSeg's
# (2048, 1024) / (2048, 512) / (2048, 640), and the generated image sizes.
CROP = (64, 64)
SCALE = (128, 64)
IMAGE = dict(cityscapes=(96, 192), ade20k=(96, 96))
SPLITS = dict(
    cityscapes=dict(train=['aachen', 'aachen', 'bremen', 'bremen'],
                    val=['frankfurt', 'lindau']),
    ade20k=dict(training=4, validation=2))
TIMINGS = {}


def dataset_of(config):
    return osp.basename(osp.dirname(config))


def baseline_of(config):
    return osp.join(osp.dirname(config), osp.basename(config)[len('sar_'):])


def base_files(config):
    """The ``_base_`` entries of a config file, read without executing it."""
    tree = ast.parse(open(config).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_'
                for t in node.targets):
            value = ast.literal_eval(node.value)
            return [value] if isinstance(value, str) else list(value)
    return []


def assigned_names(config):
    """Top-level names a config file assigns."""
    tree = ast.parse(open(config).read())
    return {t.id for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def without_scope(cfg):
    if isinstance(cfg, dict):
        return {k: without_scope(v) for k, v in cfg.items() if k != '_scope_'}
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(without_scope(v) for v in cfg)
    return cfg


def decode_heads(model_cfg):
    heads = model_cfg['decode_head']
    return list(heads) if isinstance(heads, (list, tuple)) else [heads]


def without_decode_head(cfg):
    out = copy.deepcopy(cfg.to_dict())
    del out['model']['decode_head']
    return out


# ----------------------------------------------------------------- data
def _labels(rng, shape, num_classes, ignore):
    """Blocky label map: random classes on an 8x8-pixel grid, ~10% `ignore`."""
    h, w = shape
    grid = rng.integers(0, num_classes, size=(h // 8 + 1, w // 8 + 1))
    if ignore is not None:
        grid[rng.random(grid.shape) < 0.1] = ignore
    return np.kron(grid, np.ones((8, 8), dtype=np.int64))[:h, :w].astype(
        np.uint8)


def _image(rng, label):
    palette = rng.integers(0, 256, size=(256, 3))
    img = palette[label] + rng.integers(-20, 21, size=label.shape + (3, ))
    return np.clip(img, 0, 255).astype(np.uint8)


def _write(path, array):
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, array), path


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """Cityscapes and ADE20K in their real layouts, a few images each."""
    root = tmp_path_factory.mktemp('data')
    rng = np.random.default_rng(0)
    # Cityscapes: leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit
    # .png and gtFine/<split>/<city>/..._gtFine_labelTrainIds.png (train ids
    # 0..18, 255 ignored).
    city = root / 'cityscapes'
    for split, cities in SPLITS['cityscapes'].items():
        for i, name in enumerate(cities):
            stem = f'{name}_{i:06d}_{19 + i:06d}'
            label = _labels(rng, IMAGE['cityscapes'], 19, 255)
            _write(str(city / 'gtFine' / split / name /
                       f'{stem}_gtFine_labelTrainIds.png'), label)
            _write(str(city / 'leftImg8bit' / split / name /
                       f'{stem}_leftImg8bit.png'), _image(rng, label))
    # ADE20K (ADEChallengeData2016): images/<split>/ADE_<train|val>_<8
    # digits>.jpg, annotations/<split>/*.png with 0 = other (reduced to 255 by
    # reduce_zero_label) and 1..150 the classes.
    ade = root / 'ade'
    for split, count in SPLITS['ade20k'].items():
        prefix = 'ADE_train' if split == 'training' else 'ADE_val'
        for i in range(1, count + 1):
            label = _labels(rng, IMAGE['ade20k'], 151, 0)
            _write(str(ade / 'annotations' / split / f'{prefix}_{i:08d}.png'),
                   label)
            _write(str(ade / 'images' / split / f'{prefix}_{i:08d}.jpg'),
                   _image(rng, label))
    return dict(cityscapes=str(city), ade20k=str(ade))


def test_tiny_data_layout(tiny_data):
    city = tiny_data['cityscapes']
    imgs = sorted(glob.glob(osp.join(city, 'leftImg8bit', '*', '*', '*.png')))
    anns = sorted(glob.glob(osp.join(city, 'gtFine', '*', '*', '*.png')))
    assert len(imgs) == len(anns) == 6
    assert all(a.endswith('_gtFine_labelTrainIds.png') for a in anns)
    label = cv2.imread(anns[0], cv2.IMREAD_UNCHANGED)
    assert label.dtype == np.uint8 and label.shape == IMAGE['cityscapes']
    assert set(np.unique(label)) <= set(range(19)) | {255}
    ade = tiny_data['ade20k']
    jpgs = sorted(glob.glob(osp.join(ade, 'images', '*', '*.jpg')))
    assert len(jpgs) == 6 and open(jpgs[0], 'rb').read(2) == b'\xff\xd8'
    anns = sorted(glob.glob(osp.join(ade, 'annotations', 'training', '*.png')))
    label = cv2.imread(anns[0], cv2.IMREAD_UNCHANGED)
    assert label.dtype == np.uint8 and label.max() <= 150 and 0 in label


# --------------------------------------------------------- static checks
def test_every_promised_config_is_shipped():
    for ds, names in EXPECTED.items():
        shipped = {osp.basename(c)[:-3] for c in CONFIGS
                   if dataset_of(c) == ds}
        for name in names:
            name = name.split('/')[1]
            assert name in shipped and f'sar_{name}' in shipped, (ds, name)


def test_shipped_runtime_lists_at_most_four_registered_hooks():
    """configs/_base_/sar_runtime.py: hooks by job, at most four, each one
    registered once sar_plugin is imported (what custom_imports does)."""
    import sar_plugin  # noqa: F401
    from mmseg.registry import HOOKS
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', '_base_', 'sar_runtime.py'))
    names = [h['type'] for h in cfg.custom_hooks]
    assert 0 < len(names) <= 4
    assert len(set(names)) == len(names)
    for name in names:
        assert HOOKS.get(name) is not None, name


@pytest.mark.parametrize('config', SAR_CONFIGS, ids=osp.basename)
def test_sar_config_has_baseline_and_mmseg_base(config):
    baseline = baseline_of(config)
    assert osp.isfile(baseline), f'no baseline for {config}'
    assert base_files(config) == ['./' + osp.basename(baseline)]
    bases = base_files(baseline)
    assert len(bases) == 3 and bases[0].startswith('mmseg::'), bases
    assert bases[1:] == ['../_base_/longtail_eval.py',
                         '../_base_/sar_runtime.py']
    rel = bases[0][len('mmseg::'):]
    assert osp.isfile(osp.join(MMSEG_CONFIGS, rel)), rel
    # the baseline extends the MMSeg config of the same name
    assert osp.basename(rel) == osp.basename(baseline)
    # files: the SAR config only sets the model, the baseline only the run
    # settings
    assert assigned_names(config) == {'_base_', 'model'}
    assert assigned_names(baseline) <= {
        '_base_', 'default_scope', 'randomness', 'default_hooks',
        'val_evaluator', 'test_evaluator', 'model', 'train_dataloader',
        'val_dataloader', 'test_dataloader'}


@pytest.mark.parametrize('config', SAR_CONFIGS, ids=osp.basename)
def test_baseline_is_mmseg_config_plus_run_settings(config):
    baseline = baseline_of(config)
    # inheriting through `mmseg::` tags the inherited dicts with
    # `_scope_='mmseg'` (the default scope anyway); loading MMSeg's file by
    # path does not
    ours = without_scope(Config.fromfile(baseline).to_dict())
    mmseg = without_scope(Config.fromfile(
        osp.join(MMSEG_CONFIGS, base_files(baseline)[0][len('mmseg::'):]))
        .to_dict())
    for key in ('custom_imports', 'randomness', 'longtail_evaluator',
                'custom_hooks'):
        ours.pop(key)
        assert key not in mmseg
    # sar_plugin's scope (its checking loaders); `_scope_` aside, the model
    # and the data loaders are MMSeg's
    assert (ours.pop('default_scope'), mmseg.pop('default_scope')) == (
        'sar_plugin', 'mmseg')
    # the long-tail evaluation replaces MMSeg's IoUMetric (same mIoU)
    for key in ('val_evaluator', 'test_evaluator'):
        assert mmseg.pop(key) == dict(type='IoUMetric',
                                      iou_metrics=['mIoU'])
        assert [m['type'] for m in ours.pop(key)] == [
            'LongTailIoUMetric', 'FeatureCompactnessMetric']
    hooks, mmseg_hooks = ours.pop('default_hooks'), mmseg.pop('default_hooks')
    assert ours == mmseg
    # hooks: only the logger/checkpoint arguments differ, and the checkpoint
    # interval is MMSeg's
    assert hooks.keys() == mmseg_hooks.keys()
    for name in hooks:
        if name not in ('logger', 'checkpoint'):
            assert hooks[name] == mmseg_hooks[name]
    assert hooks['checkpoint']['interval'] == \
        mmseg_hooks['checkpoint']['interval']


@pytest.mark.parametrize('config', CONFIGS, ids=osp.basename)
def test_config_run_settings(config):
    cfg = Config.fromfile(config)
    assert cfg.custom_imports == dict(
        imports=['sar_plugin'], allow_failed_imports=False)
    assert cfg.randomness == dict(seed=0)
    assert cfg.get('work_dir') is None  # tools/train.py: work_dirs/<name>
    hooks = cfg.default_hooks
    assert hooks.logger.interval == 50
    assert hooks.checkpoint.by_epoch is False
    assert hooks.checkpoint.interval == cfg.train_cfg.val_interval
    assert hooks.checkpoint.max_keep_ckpts == 2
    assert hooks.checkpoint.save_best == 'mIoU'
    # long-tail evaluation: buckets from the training split, features
    # exported (configs/_base_/longtail_eval.py)
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert [(m.type, m.class_frequency) for m in evaluator] == [
            ('LongTailIoUMetric', 'auto'),
            ('FeatureCompactnessMetric', 'auto')]
    # the hooks of configs/_base_/sar_runtime.py, whatever tool trains it
    assert [h.type for h in cfg.custom_hooks] == [
        'RunCheckHook', 'ExactResumeHook', 'AnchorStateHook',
        'LongTailEvalHook']
    assert cfg.default_scope == 'sar_plugin'
    # the schedule in the name (MMSeg's naming: ..._4xb2-80k_...)
    iters = re.search(r'-(\d+)k_', osp.basename(config)).group(1)
    assert cfg.train_cfg.max_iters == int(iters) * 1000
    heads = decode_heads(cfg.model)
    for head in heads + [cfg.model.get('auxiliary_head') or {}]:
        if 'num_classes' in head:
            assert head['num_classes'] == NUM_CLASSES[dataset_of(config)]
    name = osp.basename(config)
    if name.startswith(('fcn_hr48_', 'sar_fcn_hr48_')):
        # FCN on HRNetV2-W48 classifies the concatenated 4 branches
        head = heads[-1].get('head', heads[-1])
        assert head['in_channels'] == [48, 96, 192, 384]
        assert head['channels'] == 720 == 48 + 96 + 192 + 384


@pytest.mark.parametrize('config', SAR_CONFIGS, ids=osp.basename)
def test_sar_config_only_wraps_the_decode_head(config):
    sar = Config.fromfile(config)
    base = Config.fromfile(baseline_of(config))
    # everything but model.decode_head is identical (data, schedule, hooks,
    # backbone, auxiliary head, data preprocessor, test mode...)
    assert without_decode_head(sar) == without_decode_head(base)
    sar_heads, base_heads = decode_heads(sar.model), decode_heads(base.model)
    assert len(sar_heads) == len(base_heads)
    # a cascade keeps its first heads; the last one is wrapped unchanged
    assert sar_heads[:-1] == base_heads[:-1]
    last = sar_heads[-1]
    assert last['type'] == 'SARHead' and set(last) == {
        'type', 'head', 'anchor_losses'}
    assert last['head'] == base_heads[-1]
    assert last['head']['type'] != 'SARHead'
    # lean: no SARLoss argument is written out ...
    assert [dict(loss) for loss in last['anchor_losses']] == [
        dict(type='SARLoss')]
    # ... and the SARLoss SARHead builds has the reference hyper-parameters
    # and a projector normalised as the head is (SyncBN in MMSeg's configs)
    from mmcv.cnn import build_norm_layer
    from mmseg.registry import MODELS

    import sar_plugin  # noqa: F401  (registers SARHead, SARLoss)
    head = MODELS.build(copy.deepcopy(last))
    (loss, ) = head.anchor_losses
    assert type(loss).__name__ == 'SARLoss'
    assert {k: getattr(loss, k) for k in SAR_REFERENCE} == SAR_REFERENCE
    norm_cfg = base_heads[-1]['norm_cfg']
    assert norm_cfg['type'] == 'SyncBN'
    norm_type = type(build_norm_layer(
        {k: v for k, v in norm_cfg.items() if k != '_scope_'}, 8)[1])
    projector = loss.projector
    norms = [projector.norm1, projector.norm2, projector.conv.bn]
    # mmcv builds MMEngine's subclass of torch's SyncBatchNorm; the
    # torch-only projector builds torch's own
    assert all(issubclass(norm_type, type(n)) and
               type(n).__module__.startswith('torch.') for n in norms)
    assert all(p.requires_grad == norm_cfg.get('requires_grad', True)
               for n in norms for p in n.parameters())


def _metafile_miou(mmseg_base):
    """Single-scale mIoU of the metafile entry for an ``mmseg::`` config.

    The entry's ``Config`` must be the config and its weights must come from
    the same schedule (one DeepLabV3+ ADE20K entry lists the 80k weights
    under the 160k config).
    """
    import yaml
    rel = mmseg_base[len('mmseg::'):]
    algo = rel.split('/')[0]
    schedule = '_80k_' if '-80k_' in rel else '_160k_'
    with open(osp.join(MMSEG_CONFIGS, algo, 'metafile.yaml')) as f:
        models = yaml.safe_load(f)['Models']
    hits = [m for m in models if m.get('Config') == f'configs/{rel}'
            and schedule in m.get('Weights', '')]
    assert len(hits) == 1, (rel, [m.get('Weights') for m in hits])
    return hits[0]['Results']['Metrics']['mIoU']


def test_docs_table_matches_configs_and_metafiles():
    rows = {}
    with open(osp.join(REPO_ROOT, 'docs', 'configs.md')) as f:
        for line in f:
            cells = [c.strip().strip('`') for c in line.strip().split('|')]
            if len(cells) == 6 and cells[1].startswith('configs/'):
                rows[cells[1]] = cells[2:5]
    for config in SAR_CONFIGS:
        rel = osp.relpath(config, REPO_ROOT)
        assert rel in rows, f'{rel} missing from docs/configs.md'
        baseline, mmseg_base, miou = rows[rel]
        assert baseline == osp.relpath(baseline_of(config), REPO_ROOT)
        assert [mmseg_base, '../_base_/longtail_eval.py',
                '../_base_/sar_runtime.py'] == base_files(baseline_of(config))
        assert miou == str(_metafile_miou(mmseg_base)), rel
    assert len(rows) == len(SAR_CONFIGS)


# ------------------------------------------------------ train + validate
# sliding windows over the tiny inputs (64 x 128 after the test Resize):
# 1 x 3 windows that overlap, at 1/8 scale too
SLIDE = dict(mode='slide', crop_size=CROP, stride=(43, 43))


def tiny_config(config, data_root, work_dir, slide=False):
    cfg = Config.fromfile(config)
    # no download: pretrained weights off (ResNet/HRNet via model.pretrained,
    # MiT via backbone.init_cfg)
    cfg.model.pretrained = None
    init = cfg.model.backbone.get('init_cfg')
    if isinstance(init, dict) and init.get('type') == 'Pretrained':
        cfg.model.backbone.init_cfg = None
    assert 'Pretrained' not in str(cfg.model)
    shrunk = set()
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.batch_size = 2 if name == 'train_dataloader' else 1
        loader.dataset.data_root = data_root
        for transform in loader.dataset.pipeline:
            if transform.type in ('RandomResize', 'Resize'):
                transform.scale = SCALE
                shrunk.add(transform.type)
            elif transform.type == 'RandomCrop':
                transform.crop_size = CROP
                shrunk.add(transform.type)
    assert shrunk == {'RandomResize', 'RandomCrop', 'Resize'}, shrunk
    cfg.model.data_preprocessor.size = CROP
    # the config's own inference mode (SegFormer on Cityscapes slides)
    mode = (cfg.model.get('test_cfg') or {}).get('mode', 'whole')
    cfg.model.test_cfg = dict(SLIDE) if slide or mode == 'slide' else \
        dict(mode='whole')
    cfg.train_cfg.max_iters = 1
    cfg.train_cfg.val_interval = 1
    cfg.work_dir = work_dir
    # one checkpoint (the best one) instead of last + best: big models
    # write hundreds of MB per checkpoint
    cfg.default_hooks.checkpoint.save_last = False
    return cfg


@pytest.fixture
def fast_run(monkeypatch):
    """Keeps the tiny runs fast on a shared 2-core machine (one intra-op
    thread is set for the whole session by conftest.py).

    The Runner formats the whole config with yapf five times (log, dump,
    visualizer), a third of a tiny run; the unformatted text is the same
    valid Python, so the formatting is skipped.
    """
    import mmengine.config.config as mmengine_config
    monkeypatch.setattr(mmengine_config, 'FormatCode',
                        lambda text, **kwargs: (text, False))


def check_longtail_evaluation(logs, work_dir, ds, tiny_data):
    """Bucket mIoU and the feature metric were computed, the buckets from
    the training split's counts (cached in the work dir)."""
    for key in ('val/mIoU', 'val/mIoU.head', 'val/feat/fisher',
                'val/feat/intra_mean'):
        assert key in logs, (key, sorted(logs))
        assert np.isfinite(logs[key].current()), key
    cached = glob.glob(osp.join(work_dir, 'class_frequency_train_*.json'))
    assert len(cached) == 1, cached
    with open(cached[0]) as f:
        record = json.load(f)
    assert len(record['counts']) == NUM_CLASSES[ds]
    assert record['num_samples'] == (4 if ds == 'cityscapes' else 4)
    assert sum(record['counts']) > 0


@pytest.mark.parametrize('config', CONFIGS, ids=osp.basename)
def test_config_trains_and_validates(config, tiny_data, tmp_path, fast_run):
    from sar_plugin.utils import prepare_config
    start = time.perf_counter()
    ds = dataset_of(config)
    cfg = tiny_config(config, tiny_data[ds], str(tmp_path / 'work'))
    prepare_config(cfg)
    if not torch.cuda.is_available():
        assert 'SyncBN' not in str(cfg.model)
    runner = Runner.from_cfg(cfg)
    runner.train()

    logs = runner.message_hub.log_scalars
    check_longtail_evaluation(logs, str(tmp_path / 'work'), ds, tiny_data)
    assert glob.glob(str(tmp_path / 'work' / 'best_mIoU_iter_1.pth'))
    heads = runner.model.decode_head
    if not isinstance(heads, torch.nn.ModuleList):  # not a cascade
        heads = [heads]
    prefix = 'decode' if len(heads) == 1 else f'decode_{len(heads) - 1}'
    sar_keys = [k for k in logs if 'loss_sar' in k]
    if not osp.basename(config).startswith('sar_'):
        assert sar_keys == [] and not isinstance(heads[-1], SARHead)
    else:
        head = heads[-1]
        assert isinstance(head, SARHead)
        loss = head.anchor_losses[0]
        assert type(loss).__name__ == 'SARLoss'
        assert loss.num_classes == NUM_CLASSES[ds]
        assert loss.channels == head.conv_seg.in_channels
        assert loss.channels == head.channels  # 720 for FCN-HRNet-W48
        assert (loss.filter_conf, loss.update_conf, loss.momentum,
                loss.anchor_weight, loss.pull_weight) == (0.9, 0.8, 0.999,
                                                          1.0, 0.1)
        assert sorted(sar_keys) == [f'train/{prefix}.loss_sar_anchor',
                                    f'train/{prefix}.loss_sar_pull']
        for key in sar_keys:
            assert np.isfinite(logs[key].current())
    assert np.isfinite(logs['train/loss'].current())
    TIMINGS[osp.basename(config)] = time.perf_counter() - start


def test_slide_inference_on_a_whole_mode_config_and_test_reuses_counts(
        tiny_data, tmp_path, fast_run):
    """DeepLabV3+ in sliding-window mode: the windows' features are stitched
    for the feature metric; ``runner.test()`` afterwards reuses the cached
    class count instead of counting again."""
    from sar_plugin.utils import prepare_config
    config = osp.join(REPO_ROOT, 'configs', 'cityscapes',
                      'sar_deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024'
                      '.py')
    work = str(tmp_path / 'work')
    cfg = prepare_config(tiny_config(config, tiny_data['cityscapes'], work,
                                     slide=True))
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.model.test_cfg['mode'] == 'slide'
    check_longtail_evaluation(runner.message_hub.log_scalars, work,
                              'cityscapes', tiny_data)
    cached = glob.glob(osp.join(work, 'class_frequency_train_*.json'))[0]
    stamp = os.stat(cached).st_mtime_ns
    metrics = runner.test()
    assert np.isfinite(metrics['mIoU.head'])
    assert np.isfinite(metrics['feat/fisher'])
    assert os.stat(cached).st_mtime_ns == stamp


def test_report_slowest_configs(capsys):
    """Prints the slowest of the runs above (also without ``-s``)."""
    if not TIMINGS:
        pytest.skip('no run timed in this session')
    lines = [f'{t:6.1f}s {name}' for name, t in sorted(
        TIMINGS.items(), key=lambda kv: -kv[1])[:8]]
    with capsys.disabled():
        print('\nslowest config runs:\n' + '\n'.join(lines))


def test_readme_config_table_matches_docs():
    """The README's short table repeats docs/configs.md's numbers exactly."""
    import re
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    docs = open(osp.join(root, 'docs', 'configs.md')).read()
    readme = open(osp.join(root, 'README.md')).read()
    want = set(re.findall(
        r'`configs/(?:cityscapes|ade20k)/(sar_\S+?\.py)` \| `\S+` \| '
        r'`(mmseg::\S+)` \| ([\d.]+) \|', docs))
    got = set(re.findall(r'\| `(sar_\S+?\.py)` \| `(mmseg::\S+)` \| '
                         r'([\d.]+) \|', readme))
    assert len(want) == 16 and got == want
