"""sar_plugin's registries: children of MMSeg's, scope ``'sar_plugin'``.

The plug-in's own modules (``SARHead``, the losses, hooks, metrics, data
sets...) are registered in MMSeg's registries under new names, so a config
with MMSeg's ``default_scope='mmseg'`` finds them. The few fixes of MMSeg
behaviour that keep MMSeg's *names* (so that MMSeg's base configs pick them
up) live only here, in child registries MMSeg's own lookups never see:

This module is also the one place where the losses, plain torch modules
(:mod:`sar_plugin.losses`), enter MMSeg's ``MODELS``.

- ``CrossEntropyLoss``: the class-weighted mean over non-ignored pixels
  (:mod:`sar_plugin.losses.seg_cross_entropy`);
- ``LoadAnnotations``: errors that name the label file, refusal of
  colour and mis-sized label maps
  (:mod:`sar_plugin.datasets.transforms.loading`);
- ``CityscapesDataset``, ``ADE20KDataset``: refusal of an empty split
  (:mod:`sar_plugin.datasets.checks`).

A config opts in with ``default_scope = 'sar_plugin'`` (every shipped
config does): MMEngine then builds from these registries, which fall back
to MMSeg's (and MMEngine's) for every other name. Nothing of MMSeg's
registries changes: MMEngine's ``Registry(parent=...)`` only records the
child. ``type='sar_plugin.LoadAnnotations'`` reaches a fix from a config of
any scope.
"""
from mmengine.registry import Registry
from mmseg.registry import registry as _mmseg

from .losses import FEATURE_LOSSES, ClsCrossEntropyLoss
from .losses.seg_cross_entropy import CrossEntropyLoss

_SCOPE = 'sar_plugin'
_LOCATIONS = ['sar_plugin']


def _child(parent: Registry) -> Registry:
    # MMEngine imports only the locations of the registry a build starts
    # from: list MMSeg's too, so its lazily registered modules (hooks,
    # visualizers...) are there when this scope is the default
    return Registry(parent.name, parent=parent, scope=_SCOPE,
                    locations=_LOCATIONS + list(parent._locations))


RUNNERS = _child(_mmseg.RUNNERS)
RUNNER_CONSTRUCTORS = _child(_mmseg.RUNNER_CONSTRUCTORS)
LOOPS = _child(_mmseg.LOOPS)
HOOKS = _child(_mmseg.HOOKS)
DATASETS = _child(_mmseg.DATASETS)
DATA_SAMPLERS = _child(_mmseg.DATA_SAMPLERS)
TRANSFORMS = _child(_mmseg.TRANSFORMS)
MODELS = _child(_mmseg.MODELS)
MODEL_WRAPPERS = _child(_mmseg.MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child(_mmseg.WEIGHT_INITIALIZERS)
OPTIMIZERS = _child(_mmseg.OPTIMIZERS)
OPTIM_WRAPPERS = _child(_mmseg.OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = _child(_mmseg.OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child(_mmseg.PARAM_SCHEDULERS)
METRICS = _child(_mmseg.METRICS)
EVALUATOR = _child(_mmseg.EVALUATOR)
TASK_UTILS = _child(_mmseg.TASK_UTILS)
VISUALIZERS = _child(_mmseg.VISUALIZERS)
VISBACKENDS = _child(_mmseg.VISBACKENDS)
LOG_PROCESSORS = _child(_mmseg.LOG_PROCESSORS)
INFERENCERS = _child(_mmseg.INFERENCERS)

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'DATASETS',
    'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS',
    'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS', 'EVALUATOR',
    'TASK_UTILS', 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS',
    'INFERENCERS'
]

# the torch-only losses, under their own names in MMSeg's MODELS
for _loss in FEATURE_LOSSES + (ClsCrossEntropyLoss, ):
    _mmseg.MODELS.register_module(module=_loss)
# the fix that keeps MMSeg's name, in the child registry only
MODELS.register_module(module=CrossEntropyLoss)
