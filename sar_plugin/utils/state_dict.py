"""State-dict layouts of a wrapped (``SARHead``) and a plain decode head.

A :class:`~sar_plugin.heads.SARHead` at module path ``P`` (``decode_head.``,
``decode_head.1.`` for the last head of a cascade...) stores the wrapped
head's entries under ``P + 'head.'`` and its anchor losses' under
``P + 'anchor_losses.'``; the plain MMSeg model stores the same head's
entries directly under ``P``. These helpers convert between the two; both
heads use them when loading, so a checkpoint of either layout loads into a
model of either layout (the anchor-loss entries are training-only and are
dropped when the model has no place for them).

A prefix is taken to be a ``SARHead`` only when *every* key below it starts
with ``head.`` or ``anchor_losses.``: a plain head that happens to own a
child called ``head`` (MMSeg's ``DDRHead``) also has other entries.
"""
import re
from typing import Dict, Iterable, List, Mapping, Tuple

HEAD = 'head.'
LOSSES = 'anchor_losses.'

# where segmentors keep their decode heads, behind optional wrappers
# (``module.`` of DDP, ``ema_model.``...) and a cascade index
_HEAD_PREFIX = re.compile(r'^(?:.*\.)?(?:decode_head|auxiliary_head)'
                          r'(?:\.\d+)?\.$')


def is_sar_layout(keys: Iterable[str], prefix: str) -> bool:
    """Whether the keys below ``prefix`` are those of a ``SARHead``."""
    below = [k[len(prefix):] for k in keys if k.startswith(prefix)]
    return bool(below) and any(k.startswith(HEAD) for k in below) and all(
        k.startswith(HEAD) or k.startswith(LOSSES) for k in below)


def sar_head_prefixes(keys: Iterable[str]) -> List[str]:
    """The prefixes of a segmentor state dict that hold a ``SARHead``
    (``['decode_head.']``, ``['decode_head.1.']``...), in key order."""
    keys = list(keys)
    found: List[str] = []
    for key in keys:
        for marker in ('.' + HEAD, '.' + LOSSES):
            idx = key.find(marker)
            while idx >= 0:
                prefix = key[:idx + 1]
                if _HEAD_PREFIX.match(prefix) and prefix not in found and \
                        is_sar_layout(keys, prefix):
                    found.append(prefix)
                idx = key.find(marker, idx + 1)
    return found


def unwrap_sar_entries(state_dict: Dict, prefix: str) -> Tuple[int, List[str]]:
    """Move ``prefix + 'head.' + x`` to ``prefix + x`` and drop
    ``prefix + 'anchor_losses.*'``, in place (``state_dict`` keeps its
    order otherwise).

    Returns:
        Tuple[int, List[str]]: the number of moved entries and the dropped
        keys.
    """
    moved, dropped = 0, []
    items = list(state_dict.items())
    state_dict.clear()
    for key, value in items:
        if key.startswith(prefix + LOSSES):
            dropped.append(key)
            continue
        if key.startswith(prefix + HEAD):
            key = prefix + key[len(prefix + HEAD):]
            moved += 1
        state_dict[key] = value
    return moved, dropped


def wrap_plain_entries(state_dict: Dict, prefix: str) -> int:
    """Move ``prefix + x`` to ``prefix + 'head.' + x`` for every key below
    ``prefix`` that is not an anchor-loss entry, in place, when no key below
    ``prefix`` has the ``SARHead`` layout yet.

    Returns:
        int: the number of moved entries.
    """
    keys = [k for k in state_dict if k.startswith(prefix)]
    if not keys or any(k.startswith(prefix + HEAD) for k in keys):
        return 0
    moved = 0
    for key in keys:
        if not key.startswith(prefix + LOSSES):
            state_dict[prefix + HEAD + key[len(prefix):]] = \
                state_dict.pop(key)
            moved += 1
    return moved


def sar_to_plain(state_dict: Mapping) -> Tuple[Dict, List[str], List[str]]:
    """A copy of a segmentor state dict with every ``SARHead`` unwrapped.

    Returns:
        Tuple[dict, List[str], List[str]]: the plain state dict, the
        ``SARHead`` prefixes found and the dropped anchor-loss keys.
    """
    out = dict(state_dict)
    prefixes = sar_head_prefixes(out)
    dropped: List[str] = []
    for prefix in prefixes:
        dropped += unwrap_sar_entries(out, prefix)[1]
    return out, prefixes, dropped
