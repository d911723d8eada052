"""Plain MMSeg decode heads load SARHead checkpoints.

``SARHead`` keeps the wrapped head's entries under ``decode_head.head.*`` and
its training-only anchor-loss state under ``decode_head.anchor_losses.*``.
Evaluating such a checkpoint with the *baseline* config (a plain head) would
otherwise leave the decode head randomly initialised with only a key-mismatch
warning. Importing sar_plugin wraps
:meth:`mmseg.models.decode_heads.decode_head.BaseDecodeHead._load_from_state_dict`
so that, at any prefix whose entries all have the SARHead layout, a plain head
moves ``head.*`` back and drops ``anchor_losses.*`` (one info line), the
mirror of what ``SARHead`` does for plain checkpoints. Every loader goes
through it: ``load_from``, ``tools/test.py``, ``init_model``,
``MMSegInferencer``, ``load_checkpoint``.

MMSeg's own code is called unchanged; a head that has a child named ``head``
itself (``DDRHead``) never matches, since its checkpoint entries are not all
below ``head.`` / ``anchor_losses.``.
"""
from mmengine.logging import print_log
from mmseg.models.decode_heads.decode_head import BaseDecodeHead

from ..utils.state_dict import is_sar_layout, unwrap_sar_entries

_ORIGINAL = BaseDecodeHead._load_from_state_dict


def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                          missing_keys, unexpected_keys, error_msgs) -> None:
    if 'head' not in self._modules and is_sar_layout(state_dict, prefix):
        moved, dropped = unwrap_sar_entries(state_dict, prefix)
        print_log(
            f'{prefix}: loading a SARHead checkpoint into a plain '
            f'{type(self).__name__}: {moved} entries mapped from '
            f'{prefix}head.*, {len(dropped)} training-only anchor-loss '
            f'entries ({prefix}anchor_losses.*) dropped', logger='current')
    _ORIGINAL(self, state_dict, prefix, local_metadata, strict, missing_keys,
              unexpected_keys, error_msgs)


def install() -> None:
    """Wrap ``BaseDecodeHead._load_from_state_dict`` (idempotent)."""
    if BaseDecodeHead._load_from_state_dict is not _load_from_state_dict:
        BaseDecodeHead._load_from_state_dict = _load_from_state_dict


install()
