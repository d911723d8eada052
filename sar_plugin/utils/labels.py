"""Label checks that name the sample at fault.

A label outside ``[0, K)`` that is not the ignore index reaches a
cross-entropy as ``IndexError: Target 20 is out of bounds`` on the CPU and as
a device-side assert on a GPU, neither saying which file holds it. The heads
call :func:`check_sample_labels` before any loss, with one host sync.
"""
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

#: metainfo keys that identify a sample, most specific first
SAMPLE_KEYS = ('seg_map_path', 'img_path', 'sample_idx')


def describe_sample(sample: Any) -> str:
    """``seg_map_path=..., img_path=...`` of a data sample, as far as its
    metainfo has them (``'a sample without file metainfo'`` otherwise)."""
    meta = getattr(sample, 'metainfo', None) or {}
    found = [f'{key}={meta[key]}' for key in SAMPLE_KEYS if key in meta]
    return ', '.join(found) or 'a sample without file metainfo'


def check_sample_labels(labels: Sequence[Tensor],
                        data_samples: Sequence[Any],
                        num_classes: int,
                        ignore_index: Optional[int],
                        owner: str) -> None:
    """Raise if a label is neither in ``[0, num_classes)`` nor the ignore
    index, naming the first sample that has one and its bad values.

    Args:
        labels (Sequence[Tensor]): One label tensor per sample (any shape;
            sizes may differ between samples).
        data_samples (Sequence): The samples, for their metainfo.
        num_classes (int): K.
        ignore_index (int, optional): The ignored label, if any.
        owner (str): Who checks (named in the message).

    Raises:
        ValueError: naming the sample's files, the bad values and the
            allowed range.
    """
    if not len(labels):
        return
    flags = []
    for label in labels:
        bad = (label < 0) | (label >= num_classes)
        if ignore_index is not None:
            bad &= label != ignore_index
        flags.append(bad.any())
    flags = torch.stack(flags)
    if not bool(flags.any()):  # the one host sync
        return
    i = int(flags.nonzero()[0, 0])
    label = labels[i]
    bad = (label < 0) | (label >= num_classes)
    if ignore_index is not None:
        bad &= label != ignore_index
    values = torch.unique(label[bad]).tolist()
    shown = ', '.join(str(v) for v in values[:8]) + \
        (', ...' if len(values) > 8 else '')
    raise ValueError(
        f'{owner}: label value(s) {shown} out of range in '
        f'{describe_sample(data_samples[i])} ({int(bad.sum())} position(s)); '
        f'labels must be in [0, {num_classes - 1}] (num_classes='
        f'{num_classes}) or ignore_index={ignore_index}. Check the '
        'annotation file, the dataset classes and the head\'s num_classes '
        '(or set validate_labels=False to skip this check)')
