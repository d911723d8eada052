"""Build a head's anchor losses and merge their terms into its losses: the
one place both heads (``SARHead`` per pixel, ``AnchorClsHead`` per image)
use, so a loss class behaves the same in both."""
import inspect
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Union

from mmseg.registry import MODELS
from torch import Tensor, nn

ConfigType = Union[dict, Any]

# loss arguments that must equal the head's value when a config sets them
MUST_AGREE = {
    'num_classes': 'the classes the head predicts',
    'channels': 'the channels of the feature its classifier reads',
}


def fill_loss_cfg(cfg: ConfigType,
                  owner: str,
                  *,
                  field: str = 'anchor_losses',
                  **defaults) -> dict:
    """``cfg`` with ``defaults`` (``num_classes``, ``channels``,
    ``ignore_index``...) filled in where the loss accepts them and the
    config leaves them out or ``None``. ``field`` names ``cfg`` in the
    messages (``anchor_losses[1]``)."""
    if not isinstance(cfg, Mapping):
        raise TypeError(f"{owner}: `{field}` must be a dict with a 'type' "
                        f'(a loss config), got {cfg!r} '
                        f'({type(cfg).__name__})')
    cfg = dict(cfg)
    if 'type' not in cfg:
        raise ValueError(f"{owner}: each of `anchor_losses` needs a 'type', "
                         f'got {cfg}')
    if not isinstance(cfg['type'], (str, type)):
        raise TypeError(f"{owner}: `{field}`'s `type` must be a registered "
                        f"loss name or a class, got {cfg['type']!r} "
                        f"({type(cfg['type']).__name__})")
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
    """Build ``cfgs`` (one config dict, a list of them or ``None``) with
    :func:`fill_loss_cfg`; anything else (``'SARLoss'``, a class) is a
    ``TypeError`` naming ``anchor_losses``."""
    if cfgs is None:
        return nn.ModuleList()
    if isinstance(cfgs, Mapping):
        return nn.ModuleList(
            [MODELS.build(fill_loss_cfg(cfgs, owner, **defaults))])
    if not isinstance(cfgs, (list, tuple)):
        raise TypeError(
            f"{owner}: `anchor_losses` must be a dict or a list of dicts, "
            "each a loss config with a 'type' (e.g. "
            f"[dict(type='SARLoss')]), got {cfgs!r} ({type(cfgs).__name__})")
    return nn.ModuleList(
        MODELS.build(fill_loss_cfg(cfg, owner, field=f'anchor_losses[{i}]',
                                   **defaults))
        for i, cfg in enumerate(cfgs))


def add_anchor_terms(losses: Dict[str, Tensor], anchor_losses: nn.ModuleList,
                     feat: Tensor, label: Tensor, classifier: nn.Module,
                     owner: str) -> Dict[str, Tensor]:
    """Call every anchor loss as ``loss(feat, label, classifier=...)`` and
    add its terms to ``losses`` (in place; also returned).

    In training, the loss's :meth:`~.FeatureLoss.log_vars` (e.g. SAR's gate,
    update count and anchor confidence) are added too, detached: their names
    have no ``loss`` in them, so MMEngine's ``parse_losses`` logs them
    without adding them to the total."""
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
        log_vars = getattr(anchor_loss, 'log_vars', None)
        if anchor_loss.training and log_vars is not None:
            for name, value in log_vars().items():
                if 'loss' in name or name in losses:
                    raise KeyError(
                        f'{owner}: {type(anchor_loss).__name__} logs a '
                        f'scalar {name!r} that is '
                        + ('named like a loss term' if 'loss' in name
                           else 'already a term') + '; change its '
                        '`loss_name`')
                losses[name] = value.detach()
    return losses
