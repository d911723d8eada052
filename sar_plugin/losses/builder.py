"""Build a head's anchor losses and merge their terms into its losses: the
one place both heads (``SARHead`` per pixel, ``AnchorClsHead`` per image)
use, so a loss class behaves the same in both."""
import inspect
from typing import Any, Dict, List, Optional, Union

from mmseg.registry import MODELS
from torch import Tensor, nn

ConfigType = Union[dict, Any]

# loss arguments that must equal the head's value when a config sets them
MUST_AGREE = {
    'num_classes': 'the classes the head predicts',
    'channels': 'the channels of the feature its classifier reads',
}


def fill_loss_cfg(cfg: ConfigType, owner: str, **defaults) -> dict:
    """``cfg`` with ``defaults`` (``num_classes``, ``channels``,
    ``ignore_index``...) filled in where the loss accepts them and the
    config leaves them out or ``None``."""
    cfg = dict(cfg)
    if 'type' not in cfg:
        raise ValueError(f"{owner}: each of `anchor_losses` needs a 'type', "
                         f'got {cfg}')
    loss_cls = MODELS.get(cfg['type']) if isinstance(cfg['type'], str) \
        else cfg['type']
    if loss_cls is None:
        raise KeyError(f"{owner}: anchor loss type {cfg['type']!r} is not "
                       'registered in mmseg.registry.MODELS')
    params = inspect.signature(loss_cls.__init__).parameters
    for key, value in defaults.items():
        if key not in params or value is None:
            continue
        if cfg.get(key) is None:
            cfg[key] = value
        elif key in MUST_AGREE and cfg[key] != value:
            raise ValueError(
                f"{owner}: anchor loss {cfg['type']!r} sets `{key}`="
                f'{cfg[key]!r} but the head it is attached to has {key}='
                f'{value!r} ({MUST_AGREE[key]}); drop `{key}` from the '
                'loss config to take the head\'s value')
    return cfg


def build_anchor_losses(cfgs: Optional[Union[ConfigType, List[ConfigType]]],
                        owner: str, **defaults) -> nn.ModuleList:
    """Build ``cfgs`` (one config, a list or ``None``) with
    :func:`fill_loss_cfg`."""
    if cfgs is None:
        cfgs = []
    elif not isinstance(cfgs, (list, tuple)):
        cfgs = [cfgs]
    return nn.ModuleList(
        MODELS.build(fill_loss_cfg(cfg, owner, **defaults)) for cfg in cfgs)


def add_anchor_terms(losses: Dict[str, Tensor], anchor_losses: nn.ModuleList,
                     feat: Tensor, label: Tensor, classifier: nn.Module,
                     owner: str) -> Dict[str, Tensor]:
    """Call every anchor loss as ``loss(feat, label, classifier=...)`` and
    add its terms to ``losses`` (in place; also returned)."""
    for anchor_loss in anchor_losses:
        out = anchor_loss(feat, label, classifier=classifier)
        if isinstance(out, Tensor):
            out = {anchor_loss.loss_name: out}
        for name, value in out.items():
            if not name.startswith('loss_'):
                raise ValueError(f'{type(anchor_loss).__name__} returned a '
                                 f"term {name!r}; names must start with "
                                 "'loss_'")
            if name in losses:
                raise KeyError(f'{owner}: two loss terms are named {name!r}; '
                               'give the anchor losses different '
                               '`loss_name`s')
            losses[name] = value
    return losses
