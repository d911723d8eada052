"""Let one config serve a GPU cluster (SyncBN) and a CPU machine (BN)."""
from typing import Any, Tuple

SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN')


def sync_bn_to_bn(cfg: Any) -> Tuple[Any, int]:
    """Replace every ``type='SyncBN'`` / ``'MMSyncBN'`` in a config by ``BN``.

    ``torch.nn.SyncBatchNorm`` only works on GPU modules under DDP, so
    ``tools/train.py`` and ``tools/test.py`` apply this when CUDA is not
    available. The config is modified in place.

    Returns:
        Tuple[Any, int]: The config and how many norm layers were changed.
    """
    changed = 0
    if isinstance(cfg, dict):
        if cfg.get('type') in SYNC_BN_TYPES:
            cfg['type'] = 'BN'
            changed += 1
        for value in cfg.values():
            changed += sync_bn_to_bn(value)[1]
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            changed += sync_bn_to_bn(value)[1]
    return cfg, changed
