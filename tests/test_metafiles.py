"""The OpenMMLab model index: ``model-index.yml`` (collections + imports) and
one ``metafile.yaml`` per config folder, the files ``mim search`` reads.

Every shipped config must have exactly one entry, and every entry must agree
with its config (collection = the anchor loss it adds, batch size, schedule,
baseline). The only results allowed are MMSeg's published mIoU of the MMSeg
config a baseline inherits: each is compared with MMSeg's installed metafile
entry (found by ``MMSeg Config`` and ``MMSeg Weights``), so a number can
neither be invented nor drift. A config added without an entry fails here.
"""
import ast
import collections
import functools
import glob
import os.path as osp
import re

import pytest
import yaml
from mmengine.config import Config

from conftest import REPO_ROOT

MODEL_INDEX = osp.join(REPO_ROOT, 'model-index.yml')
MMSEG_CONFIGS = osp.join(
    osp.dirname(__import__('mmseg').__file__), '.mim', 'configs')
RESULTS_SOURCE = 'MMSeg metafile (published baseline)'
# anchor-loss type (in `anchor_losses` of SARHead / AnchorClsHead) -> the
# collection its configs belong to; configs without anchor losses: 'Baseline'
LOSS_COLLECTION = {
    'SARLoss': 'SAR',
    'ANCMLoss': 'ANCM',
    'CenterLoss': 'Center Loss',
    'HALLoss': 'HAL',
    'LDMATLoss': 'LDMAT',
    'LargeMarginLoss': 'Large Margin Loss',
}
BASELINE = 'Baseline'
# (training data set type, imbalance_ratio set) -> `Training Data`
TRAINING_DATA = {
    ('CityscapesDataset', False): 'Cityscapes',
    ('ADE20KDataset', False): 'ADE20K',
    ('CamVidDataset', False): 'CamVid',
    ('SyntheticLongTailDataset', True): 'Synthetic long-tail segmentation',
    ('CIFAR10', False): 'CIFAR-10',
    ('CIFAR100', False): 'CIFAR-100',
    ('CIFAR100', True): 'CIFAR-100-LT',
    ('SyntheticCIFAR10', True): 'Synthetic CIFAR-10-LT',
    ('ImageListDataset', False): 'ImageNet-LT',
}


def _yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def _rel(path):
    return osp.relpath(path, REPO_ROOT).replace(osp.sep, '/')


def shipped_configs():
    """Every config under configs/ except `_base_` and files starting with
    `_`, as repository-relative paths."""
    paths = glob.glob(
        osp.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True)
    return sorted(
        _rel(p) for p in paths if '_base_' not in _rel(p).split('/')
        and not osp.basename(p).startswith('_'))


INDEX = _yaml(MODEL_INDEX)
METAFILES = INDEX['Import']
COLLECTIONS = INDEX['Collections']
# (metafile, model entry), in index order
ENTRIES = [(mf, model) for mf in METAFILES
           for model in _yaml(osp.join(REPO_ROOT, mf))['Models']]
MODELS = [model for _, model in ENTRIES]
BY_NAME = {m['Name']: m for m in MODELS}


def _ids(models):
    return [m.get('Name', '?') for m in models]


def base_files(config):
    """The `_base_` of a config file as written (a list), without running it."""
    with open(osp.join(REPO_ROOT, config)) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], 'id', None) == '_base_'):
            base = ast.literal_eval(node.value)
            return [base] if isinstance(base, str) else list(base)
    return []


def mmseg_base(config):
    """The MMSeg algorithm config (`mmseg::<algo>/<name>.py`, not one of
    MMSeg's `_base_` parts) a config inherits directly, or None."""
    bases = [
        b for b in base_files(config)
        if b.startswith('mmseg::') and not b.startswith('mmseg::_base_/')
    ]
    assert len(bases) <= 1, (config, bases)
    return bases[0] if bases else None


@functools.lru_cache(maxsize=None)
def load_config(config):
    return Config.fromfile(
        osp.join(REPO_ROOT, config), import_custom_modules=False)


def anchor_loss_types(cfg):
    """Types of every loss listed in an `anchor_losses` of the model."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == 'anchor_losses':
                    found.extend(loss['type'] for loss in value)
                else:
                    walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(cfg.model.to_dict())
    return found


@functools.lru_cache(maxsize=None)
def mmseg_metafile(algo):
    return _yaml(osp.join(MMSEG_CONFIGS, algo, 'metafile.yaml'))['Models']


# ------------------------------------------------------------------ layout
def test_index_layout():
    assert set(INDEX) == {'Import', 'Collections'}
    assert len(set(METAFILES)) == len(METAFILES)
    on_disk = sorted(
        _rel(p) for p in glob.glob(
            osp.join(REPO_ROOT, 'configs', '**', 'metafile.yaml'),
            recursive=True))
    assert sorted(METAFILES) == on_disk, 'a metafile is not imported'
    for mf in METAFILES:
        # collections are defined once, in model-index.yml
        assert set(_yaml(osp.join(REPO_ROOT, mf))) == {'Models'}, mf
        assert mf.startswith('configs/') and '_base_' not in mf.split('/')


def test_every_config_listed_exactly_once():
    listed = collections.Counter(m['Config'] for m in MODELS)
    twice = sorted(c for c, n in listed.items() if n > 1)
    assert not twice, f'listed more than once: {twice}'
    shipped = shipped_configs()
    missing = sorted(set(shipped) - set(listed))
    assert not missing, f'configs without a metafile entry: {missing}'
    unknown = sorted(set(listed) - set(shipped))
    assert not unknown, f'entries whose Config is not a shipped config: ' \
        f'{unknown}'
    for config in listed:
        assert osp.isfile(osp.join(REPO_ROOT, config)), config


def test_entry_in_the_metafile_of_its_folder():
    """A config's entry is in the metafile of the nearest folder above it
    that has one (configs/camvid/heldout/ -> configs/camvid/metafile.yaml)."""
    for mf, model in ENTRIES:
        folder = osp.dirname(model['Config'])
        while not osp.isfile(osp.join(REPO_ROOT, folder, 'metafile.yaml')):
            assert folder != 'configs', model['Config']
            folder = osp.dirname(folder)
        assert mf == f'{folder}/metafile.yaml', model['Config']


def test_names_unique_and_named_after_the_config():
    names = collections.Counter(m['Name'] for m in MODELS)
    assert not [n for n, c in names.items() if c > 1]
    for model in MODELS:
        assert model['Name'] == osp.basename(model['Config'])[:-len('.py')]


def test_collections():
    names = [c['Name'] for c in COLLECTIONS]
    assert len(set(names)) == len(names)
    by_name = {c['Name']: c for c in COLLECTIONS}
    for model in MODELS:
        assert model['In Collection'] in by_name, model['Name']
    used = {m['In Collection'] for m in MODELS}
    assert used == set(names), 'a collection without models'
    assert set(LOSS_COLLECTION.values()) | {BASELINE} >= set(names)
    for name, coll in by_name.items():
        members = [m for m in MODELS if m['In Collection'] == name]
        # the collection's data sets are its models', in index order
        data = list(
            dict.fromkeys(m['Metadata']['Training Data'] for m in members))
        assert coll['Metadata']['Training Data'] == data, name
        for model in members:
            # loss models repeat their collection's paper and code (as MMSeg
            # does), baselines have none
            assert model.get('Paper') == coll.get('Paper'), model['Name']
            assert model.get('Code') == coll.get('Code'), model['Name']
        if name != BASELINE:
            assert coll['Paper']['Title'], name
        if coll.get('README'):
            assert osp.isfile(osp.join(REPO_ROOT, coll['README'])), name
    sar = by_name['SAR']
    assert sar['Paper'] == {
        'Title': 'Beyond Prototypes: Semantic Anchor Regularization for '
        'Better Representation Learning',
        'URL': 'https://arxiv.org/abs/2312.11872'
    }
    assert sar['Code'] == 'https://github.com/geyanqi/SAR'


def test_no_weights():
    # no released checkpoints: an entry must not point at any
    assert not [m['Name'] for m in MODELS if 'Weights' in m]


# ------------------------------------------------------- entry vs config
@pytest.mark.parametrize('model', MODELS, ids=_ids(MODELS))
def test_entry_matches_its_config(model):
    config = model['Config']
    cfg = load_config(config)
    meta = model['Metadata']

    losses = anchor_loss_types(cfg)
    unknown = set(losses) - set(LOSS_COLLECTION)
    assert not unknown, f'{config}: no collection for {unknown}'
    expected = sorted({LOSS_COLLECTION[t] for t in losses}) or [BASELINE]
    assert [model['In Collection']] == expected, config
    if losses:
        assert meta.get('Training Techniques'), config

    # `<gpus>xb<images per GPU>` in the name; Batch Size is the total, as in
    # MMSeg's metafiles
    match = re.search(r'_(\d+)xb(\d+)-', model['Name'])
    assert match, model['Name']
    gpus, per_gpu = int(match.group(1)), int(match.group(2))
    assert cfg.train_dataloader.batch_size == per_gpu, config
    assert meta['Batch Size'] == gpus * per_gpu, config

    train_cfg = cfg.train_cfg
    if 'max_iters' in train_cfg:
        assert meta['Iterations'] == train_cfg.max_iters, config
        assert 'Epochs' not in meta
    else:
        assert meta['Epochs'] == train_cfg.max_epochs, config
        assert 'Iterations' not in meta
    dataset = cfg.train_dataloader.dataset
    ratio = dataset.get('imbalance_ratio')
    assert meta.get('Imbalance Ratio') == ratio, config
    key = (dataset.type, ratio is not None)
    assert key in TRAINING_DATA, f'{config}: add {key} to TRAINING_DATA'
    assert meta['Training Data'] == TRAINING_DATA[key], config

    if model['In Collection'] != BASELINE:
        # a loss config is its baseline + the loss: `_base_` is the baseline
        baseline = BY_NAME[meta['Baseline Model']]
        assert baseline['In Collection'] == BASELINE
        bases = base_files(config)
        assert len(bases) == 1, config
        assert osp.normpath(osp.join(osp.dirname(config), bases[0])) == \
            osp.normpath(baseline['Config'])
        for key in ('Training Data', 'Batch Size', 'Architecture'):
            assert meta[key] == baseline['Metadata'][key], (config, key)
    else:
        assert 'Baseline Model' not in meta

    # results exactly for the configs that inherit an MMSeg config
    base = mmseg_base(config)
    if base is None:
        assert 'Results' not in model, f'{config}: Results without a ' \
            'published MMSeg baseline'
        for key in ('Results Source', 'MMSeg Config', 'MMSeg Weights'):
            assert key not in meta, (config, key)
    else:
        assert model['In Collection'] == BASELINE
        assert meta['MMSeg Config'] == base, config
        assert 'Results' in model, config


RESULT_MODELS = [m for m in MODELS if 'Results' in m]


def test_results_only_from_mmseg_baselines():
    """Results, their source and the MMSeg entry they come from go together
    (which configs may have them: test_entry_matches_its_config)."""
    for model in MODELS:
        meta = model['Metadata']
        marked = [
            k for k in ('Results Source', 'MMSeg Config', 'MMSeg Weights')
            if k in meta
        ]
        if 'Results' in model:
            assert meta.get('Results Source') == RESULTS_SOURCE, \
                model['Name']
            assert len(marked) == 3, model['Name']
        else:
            assert not marked, model['Name']


@pytest.mark.parametrize('model', RESULT_MODELS, ids=_ids(RESULT_MODELS))
def test_results_equal_mmseg_metafile(model):
    meta = model['Metadata']
    assert meta.get('Results Source') == RESULTS_SOURCE, model['Name']
    algo, name = meta['MMSeg Config'][len('mmseg::'):].split('/')
    # the entry of MMSeg's metafile with that config and those weights (one
    # DeepLabV3+ ADE20K config has two entries, told apart by the weights)
    hits = [
        m for m in mmseg_metafile(algo)
        if m.get('Config') == f'configs/{algo}/{name}'
        and m.get('Weights') == meta['MMSeg Weights']
    ]
    assert len(hits) == 1, (meta['MMSeg Config'], meta['MMSeg Weights'])
    published = hits[0]
    # the weights are of the same schedule as the config
    schedule = re.search(r'-(\d+k)_', name).group(1)
    assert f'_{schedule}_' in meta['MMSeg Weights']

    results = model['Results']
    assert isinstance(results, dict), 'one result per entry'
    assert results['Task'] == published['Results']['Task']
    # MMSeg's OCRNet Cityscapes entry has `Dataset: '# HRNet backbone'`
    # (docs/configs.md): ours names the data set the config trains on
    assert results['Dataset'] == meta['Training Data']
    if not published['Results']['Dataset'].startswith('#'):
        assert results['Dataset'] == published['Results']['Dataset']
    assert results['Metrics'], model['Name']
    for metric, value in results['Metrics'].items():
        assert value == published['Results']['Metrics'][metric], \
            (model['Name'], metric)
    # the model the number belongs to
    assert meta['Batch Size'] == published['Metadata']['Batch Size']
    assert meta['Architecture'] == published['Metadata']['Architecture']


# ------------------------------------------------------------ mim reader
def test_mim_reads_the_index():
    pytest.importorskip('mim')
    from mim.commands.search import convert2df
    from modelindex.load_model_index import load

    index = load(MODEL_INDEX)
    assert index.check(silent=True) == []
    assert sorted(m.name for m in index.models) == sorted(BY_NAME)
    table = convert2df(index)  # what `mim search` prints from
    assert sorted(table.index) == sorted(BY_NAME)
