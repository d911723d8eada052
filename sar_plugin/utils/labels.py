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


def out_of_range(label: Tensor, num_classes: int,
                 ignore_index: Optional[int]) -> Tensor:
    """Mask of the labels neither in ``[0, num_classes)`` nor
    ``ignore_index``."""
    bad = (label < 0) | (label >= num_classes)
    if ignore_index is not None:
        bad &= label != ignore_index
    return bad


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
    if all(label.shape == labels[0].shape for label in labels):
        # one batched check instead of a few small ops per sample
        flags = out_of_range(torch.stack(list(labels)), num_classes,
                             ignore_index).reshape(len(labels), -1).any(1)
    else:
        flags = torch.stack([
            out_of_range(label, num_classes, ignore_index).any()
            for label in labels
        ])
    if not bool(flags.any()):  # the one host sync
        return
    i = int(flags.nonzero()[0, 0])
    label = labels[i]
    bad = out_of_range(label, num_classes, ignore_index)
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


class LabelRangeCheck:
    """Evaluation-time label check: raise naming the image, or exclude.

    MMSeg's ``IoUMetric`` drops a label outside ``[0, K)`` from the label
    counts but still counts the prediction at that pixel, as a false
    positive: a wrong mIoU with no warning. This check either raises
    (``strict``), naming the image and the values, or turns those pixels
    into ``ignore_index`` so that label *and* prediction are excluded, and
    counts them for one warning per evaluation (:meth:`flush`).

    Args:
        strict (bool): Raise on the first bad label.
        ignore_index (int): The ignored label.
        owner (str): Named in the messages.
    """

    def __init__(self, strict: bool, ignore_index: int, owner: str) -> None:
        self.strict = strict
        self.ignore_index = ignore_index
        self.owner = owner
        self.excluded = 0
        self.images = 0

    def __call__(self, label: Tensor, num_classes: int, where: str) -> Tensor:
        """``label`` itself when every value is allowed; else raise, or a
        copy with the bad pixels set to ``ignore_index``."""
        bad = out_of_range(label, num_classes, self.ignore_index)
        if not bool(bad.any()):
            return label
        if self.strict:
            values = torch.unique(label[bad]).tolist()
            raise ValueError(
                f'{self.owner}: label value(s) '
                f'{", ".join(map(str, values[:8]))} in {where} '
                f'({int(bad.sum())} pixel(s)) are outside [0, '
                f'{num_classes - 1}] (num_classes={num_classes}) and not '
                f'ignore_index={self.ignore_index}. MMSeg\'s IoU would count '
                'the predictions there as false positives. Fix the '
                'annotation or the dataset classes, or set '
                'strict_labels=False to exclude such pixels with a warning')
        self.excluded += int(bad.sum())
        self.images += 1
        return torch.where(bad, torch.full_like(label, self.ignore_index),
                           label)

    def flush(self) -> Optional[str]:
        """The warning for what was excluded since the last flush (None if
        nothing was), and reset the counts."""
        if not self.excluded:
            return None
        message = (f'{self.owner}: excluded {self.excluded} pixel(s) in '
                   f'{self.images} image(s) whose labels are outside the '
                   'classes and not the ignore index (labels and predictions '
                   'there are not counted; strict_labels=False)')
        self.excluded = self.images = 0
        return message
