"""One rule for the anchor losses' weights: every shipped config, for
segmentation and classification alike, uses the loss' default
``loss_weight`` (the value chosen on the demo's validation split,
docs/losses.md "Choosing a weight"), or is a stated exception; and the
docs' table of defaults is the code's."""
import glob
import inspect
import os.path as osp
import re

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT
from sar_plugin.losses import (ANCMLoss, CenterLoss, HALLoss, LargeMarginLoss,
                               LDMATLoss, SARLoss)

LOSSES = {cls.__name__: cls for cls in (ANCMLoss, CenterLoss, HALLoss,
                                        LargeMarginLoss, LDMATLoss, SARLoss)}
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                         recursive=True)
    if '_base_' not in p.split(osp.sep))
# (config file name, loss type) -> why it differs; each reason is in
# docs/losses.md. None today.
EXCEPTIONS = {}
DOC = osp.join(REPO_ROOT, 'docs', 'losses.md')


def default_weight(name):
    return inspect.signature(LOSSES[name].__init__).parameters[
        'loss_weight'].default


def loss_dicts(node):
    """Every dict with a ``type`` that is an anchor loss, anywhere."""
    if isinstance(node, dict):
        if node.get('type') in LOSSES:
            yield node
        for value in node.values():
            yield from loss_dicts(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from loss_dicts(value)


def test_the_configs_are_found():
    assert len(CONFIGS) >= 99
    names = {osp.basename(c) for c in CONFIGS}
    assert 'hal_resnet20_1xb64-30e_synthetic-cifar10-lt-r100.py' in names
    assert 'center_fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py' in names


@pytest.mark.parametrize('config', CONFIGS,
                         ids=[osp.relpath(c, REPO_ROOT) for c in CONFIGS])
def test_config_uses_the_default_weight(config):
    cfg = Config.fromfile(config)
    for loss in loss_dicts(cfg.to_dict()):
        name = loss['type']
        weight = loss.get('loss_weight', default_weight(name))
        key = (osp.basename(config), name)
        if key in EXCEPTIONS:
            assert weight != default_weight(name), key
            continue
        assert weight == default_weight(name), (
            f'{osp.relpath(config, REPO_ROOT)}: {name} loss_weight={weight}, '
            f'the default is {default_weight(name)}: drop it, or list the '
            'exception here and in docs/losses.md')


def test_every_family_config_has_an_anchor_loss():
    family = [c for c in CONFIGS if re.match(
        r'(sar|ancm-euclidean|ancm-cosine|hal|ldmat|large-margin|center)_',
        osp.basename(c))]
    assert len(family) > 60
    for config in family:
        assert list(loss_dicts(Config.fromfile(config).to_dict())), config


def test_docs_state_the_defaults():
    """docs/losses.md's "Choosing a weight" table gives each loss' default
    as the code has it, and names every exception."""
    text = open(DOC).read()
    start = text.index('## Choosing a weight')
    section = text[start:text.find('\n## ', start + 1)]
    rows = dict(re.findall(r'^\| `(\w+)`[^|]*\| ([0-9.]+) \|', section,
                           re.M))
    for name in LOSSES:
        if name == 'SARLoss':
            continue
        assert name in rows, f'{name} missing from the table'
        assert float(rows[name]) == default_weight(name), name
    for (config, name), reason in EXCEPTIONS.items():
        assert config in section and reason in section
