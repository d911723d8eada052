"""Issue 21, case 12: a wrongly typed loss argument fails at build time with
a message that names the loss and the field, not with Python's own
(``'<' not supported between 'str' and 'float'``, ``dictionary update
sequence element #0 ...``).

Table-driven over every registered anchor loss (every ``FeatureLoss``
subclass in ``mmseg.registry.MODELS``, plus ``ClsCrossEntropyLoss``): each
parameter of the class' ``__init__`` (and, through ``**kwargs``, those of
``FeatureLoss.__init__``) gets the wrong values of its kind, built through
the registry. A parameter with no entry in :data:`KINDS` fails
:func:`test_every_parameter_has_a_kind`, so a loss or an argument added later
must be classified here.
"""
import inspect

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmseg.registry import MODELS

import sar_plugin  # noqa: F401  (registers the losses)
from sar_plugin.losses import FeatureLoss
from sar_plugin.losses.builder import build_anchor_losses

K, C = 4, 8
NAMED = ('SARLoss', 'ANCMLoss', 'HALLoss', 'LDMATLoss', 'LargeMarginLoss',
         'CenterLoss', 'ClsCrossEntropyLoss')


def registered_losses():
    """``{name: class}``: every FeatureLoss in MODELS, and the image
    classification cross-entropy."""
    found = {name: cls for name, cls in MODELS.module_dict.items()
             if isinstance(cls, type) and issubclass(cls, FeatureLoss)}
    found['ClsCrossEntropyLoss'] = MODELS.get('ClsCrossEntropyLoss')
    return found


LOSSES = registered_losses()


def parameters(cls):
    """The constructor's named parameters; those of FeatureLoss too when
    the class forwards ``**kwargs`` to it."""
    names, forwards = [], False
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == 'self' or p.kind is p.VAR_POSITIONAL:
            continue
        if p.kind is p.VAR_KEYWORD:
            forwards = True
            continue
        names.append(p.name)
    if forwards and issubclass(cls, FeatureLoss):
        names += [n for n in parameters(FeatureLoss) if n not in names]
    return names


# ------------------------------------------------------- bad-value tables
T, V = TypeError, ValueError
NUMBER = [('1.0', T), (None, T), ([1.0], T), (True, T), (False, T),
          ({'value': 1.0}, T), (torch.ones(2), T), (float('nan'), V)]
INT = [('4', T), (None, T), (2.5, T), ([4], T), (True, T), ({}, T),
       (float('nan'), T)]
POSITIVE_INT = [(b, e) for b, e in INT if b is not None] + \
    [(None, V), (0, V), (-3, V)]  # None: "required", as before
SEED = [('abc', T), ('0', T), (1.5, T), ([0], T), (True, T), ({}, T),
        (-1, V)]
BOOL = [('yes', T), ('False', T), (None, T), (1, T), (0.0, T), ([True], T)]
CHOICE = [(5, T), (None, T), (['x'], T), (True, T), ({}, T),
          ('no-such-choice', V)]
NAME = [(5, T), (None, T), (['loss_x'], T), ('x', V), ('', V)]
FEATURE_CLASS_WEIGHT = [
    ('balanced', T), (1.0, T), (True, T), ({'a': 1.0}, T),
    ([1.0, 'a', 1.0, 1.0], T), ([True] * K, T), ([[1.0]] * K, T),
    ({1.0, 2.0, 3.0, 4.0}, T), ([1.0, 2.0], V), ([1.0, -1.0, 1.0, 1.0], V),
    ([1.0, float('nan'), 1.0, 1.0], V)]
CLS_CLASS_WEIGHT = [
    ('balanced', V), (1.0, T), (True, T), ({'a': 1.0}, T), (['a', 1.0], T),
    ([True, False], T), ([-1.0, 1.0], V)]
COUNTS = [('abc', T), (5, T), ([1, 'a'], T), ({'a': 1}, T), ([True, 2], T),
          ([0, 1], V)]
NORM_CFG = [('BN', T), (None, T), (['BN'], T), (5, T), ({'requires_grad':
                                                        True}, V),
            ({'type': 5}, T), ({'type': 'NoSuchNorm'}, V)]

# parameter -> its bad values; (loss, parameter) overrides a name
KINDS = {
    'num_classes': POSITIVE_INT,
    'channels': POSITIVE_INT,
    'ignore_index': INT,
    'max_samples': INT + [(1, V)],
    'anchor_seed': SEED,
    'sample_seed': SEED,
    'center_seed': SEED + [(None, T)],
    'detach_weights': BOOL,
    'hinge': BOOL,
    'normalize': BOOL,
    'validate_labels': BOOL,
    'anchor_init': CHOICE,
    'pull': CHOICE,
    'gate': CHOICE,
    'distance': CHOICE,
    'center_mode': CHOICE,
    'center_init': CHOICE,
    'reduction': CHOICE,
    'channel_reduction': CHOICE,
    'loss_name': NAME,
    'class_weight': FEATURE_CLASS_WEIGHT,
    ('ClsCrossEntropyLoss', 'class_weight'): CLS_CLASS_WEIGHT,
    'class_counts': COUNTS,
    'norm_cfg': NORM_CFG,
}
for _name in ('loss_weight', 'anchor_scale', 'filter_conf', 'update_conf',
              'momentum', 'anchor_weight', 'pull_weight', 'scale',
              'temperature', 'margin', 'relax', 'lambda_c', 'lambda_m',
              'label_smoothing', 'beta'):
    KINDS[_name] = NUMBER + [(-1.0, V), (float('inf'), V)]


def bad_values(loss, param):
    return KINDS.get((loss, param), KINDS.get(param))


def base_cfg(loss):
    cfg = dict(type=loss)
    if 'num_classes' in parameters(LOSSES[loss]):
        cfg.update(num_classes=K, channels=C)
    return cfg


CASES = [pytest.param(loss, param, bad, exc,
                      id=f'{loss}-{param}-{i}-{type(bad).__name__}')
         for loss in sorted(LOSSES) for param in parameters(LOSSES[loss])
         for i, (bad, exc) in enumerate(bad_values(loss, param) or [])]


def message(exc_info):
    return str(exc_info.value)


# ------------------------------------------------------------------ tests
def test_every_named_loss_is_registered_and_builds():
    assert set(NAMED) <= set(LOSSES)
    for loss in LOSSES:
        MODELS.build(base_cfg(loss))


def test_every_parameter_has_a_kind():
    missing = [f'{loss}.{p}' for loss in sorted(LOSSES)
               for p in parameters(LOSSES[loss]) if not bad_values(loss, p)]
    assert not missing, ('add these constructor arguments to KINDS: '
                         f'{missing}')


@pytest.mark.parametrize('loss,param,bad,exc', CASES)
def test_wrong_value_names_the_loss_and_the_field(loss, param, bad, exc):
    with pytest.raises((TypeError, ValueError)) as info:
        MODELS.build(dict(base_cfg(loss), **{param: bad}))
    text = message(info)
    assert f'`{param}`' in text, text
    assert f'{loss}: ' in text, text  # our message, not only MMEngine's
    assert info.type is exc, f'{info.type.__name__}: {text}'


# the examples of the issue, word for word
@pytest.mark.parametrize('loss', NAMED)
@pytest.mark.parametrize('bad', ['1.0', None, True])
def test_issue_loss_weight(loss, bad):
    with pytest.raises(TypeError, match=f'{loss}: `loss_weight` must be a '
                       'number >= 0, got'):
        MODELS.build(dict(base_cfg(loss), loss_weight=bad))


def test_issue_momentum_message():
    with pytest.raises(TypeError) as info:
        MODELS.build(dict(type='SARLoss', num_classes=K, channels=C,
                          momentum='0.99'))
    assert "SARLoss: `momentum` must be a number in [0, 1), got '0.99' " \
        '(str)' in message(info)


@pytest.mark.parametrize('loss', ['CenterLoss', 'ANCMLoss', 'SARLoss'])
def test_issue_class_weight_string(loss):
    with pytest.raises(TypeError, match=f'{loss}: `class_weight` must be a '
                       'sequence of'):
        MODELS.build(dict(base_cfg(loss), class_weight='balanced'))


@pytest.mark.parametrize('loss', ['SARLoss', 'ANCMLoss', 'HALLoss'])
def test_issue_anchor_seed(loss):
    with pytest.raises(TypeError, match=f'{loss}: `anchor_seed` must be an '
                       'int'):
        MODELS.build(dict(base_cfg(loss), anchor_seed='abc'))


@pytest.mark.parametrize('bad', ['SARLoss', 5, dict, [dict(type='SARLoss'),
                                                      'CenterLoss']])
def test_issue_anchor_losses_not_a_dict(bad):
    with pytest.raises(TypeError, match=r'SARHead: `anchor_losses(\[1\])?` '
                       'must be a dict') as info:
        build_anchor_losses(bad, 'SARHead', num_classes=K, channels=C)
    if not isinstance(bad, list):
        assert 'a list of dicts' in message(info)


def test_issue_anchor_losses_string_in_the_heads():
    with pytest.raises(TypeError, match='SARHead: `anchor_losses` must be a '
                       'dict or a list of dicts'):
        MODELS.build(dict(
            type='SARHead',
            head=dict(type='FCNHead', in_channels=C, channels=C,
                      num_convs=1, num_classes=K),
            anchor_losses='SARLoss'))
    with pytest.raises(TypeError, match='AnchorClsHead: `anchor_losses` '
                       'must be a dict or a list of dicts'):
        MODELS.build(dict(type='AnchorClsHead', num_classes=K,
                          in_channels=C, anchor_losses='SARLoss'))


def test_anchor_loss_type_must_be_a_name_or_a_class():
    with pytest.raises(TypeError, match=r"SARHead: `anchor_losses\[0\]`'s "
                       '`type` must be'):
        build_anchor_losses([dict(type=5)], 'SARHead', num_classes=K,
                            channels=C)


def test_numpy_and_friends_are_accepted():
    """numpy scalars and arrays, tuples, tensors and ConfigDicts are fine;
    the stored values are plain Python ones."""
    sar = MODELS.build(dict(
        type='SARLoss', num_classes=np.int64(K), channels=np.int32(C),
        momentum=np.float32(0.5), loss_weight=1, anchor_seed=np.int64(3),
        anchor_scale=np.float64(2.0), detach_weights=np.bool_(True),
        norm_cfg=ConfigDict(type='BN', requires_grad=True),
        class_weight=np.array([1.0, 2.0, 3.0, 4.0])))
    assert type(sar.momentum) is float and sar.momentum == 0.5
    assert type(sar.num_classes) is int and type(sar.loss_weight) is float
    assert sar.detach_weights is True
    assert sar.class_weight.tolist() == [1.0, 2.0, 3.0, 4.0]
    center = MODELS.build(dict(type='CenterLoss', num_classes=K, channels=C,
                               class_weight=(1, 2, 3, 4),
                               center_seed=np.int64(2)))
    assert center.class_weight.tolist() == [1.0, 2.0, 3.0, 4.0]
    ldmat = MODELS.build(dict(type='LDMATLoss', num_classes=K, channels=C,
                              class_weight=torch.tensor([1.0, 2, 3, 4]),
                              max_samples=np.int64(16), sample_seed=None))
    assert type(ldmat.max_samples) is int
    cls = MODELS.build(dict(type='ClsCrossEntropyLoss',
                            class_weight='effective',
                            class_counts=np.array([10, 5, 1]),
                            beta=np.float32(0.9), label_smoothing=0))
    assert cls.class_weight.shape == (3, )
    assert type(cls.label_smoothing) is float


def test_integer_floats_are_not_ints():
    with pytest.raises(TypeError, match='`num_classes` must be an int'):
        MODELS.build(dict(type='CenterLoss', num_classes=4.0, channels=C))
