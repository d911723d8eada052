"""Data checks whose errors name the file at fault.

Two kinds of problems are caught here, for every segmentation dataset the
project ships configs for:

- an *empty split* (a data root, ``img_path`` or split file that yields no
  sample): :class:`NonEmptySplitMixin` turns it into a
  :class:`FileNotFoundError` naming the directory or split file and the
  suffixes searched, instead of MMEngine's later ``"need at least one array
  to concatenate"``. :class:`~sar_plugin.datasets.CamVidDataset` and
  :class:`~sar_plugin.datasets.SyntheticLongTailDataset` use it directly;
  MMSeg's ``CityscapesDataset`` and ``ADE20KDataset`` get it below, under
  their names in :mod:`sar_plugin.registry` (same behaviour on valid data);
- a *bad label map* (not single-channel, or not the size of its image):
  :func:`check_label_map`, called by the project's ``LoadAnnotations``
  (:mod:`sar_plugin.datasets.transforms`), raises a :class:`ValueError`
  naming the file(s).
"""
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmseg.datasets import ADE20KDataset as _MMSegADE20KDataset
from mmseg.datasets import CityscapesDataset as _MMSegCityscapesDataset

from ..registry import DATASETS

__all__ = [
    'NonEmptySplitMixin', 'empty_split_message', 'check_label_map',
    'CityscapesDataset', 'ADE20KDataset'
]

# How many directory entries are looked at for the "other files" hint.
_MAX_SCANNED = 10000


def _other_files(directory: str, limit: int = 3) -> Tuple[int, List[str]]:
    """Count the files under ``directory`` (recursively, up to a bound) and
    return a few of their paths relative to it, for an error's hint."""
    count, examples = 0, []
    for dirpath, _, filenames in os.walk(directory):
        for name in sorted(filenames):
            count += 1
            if len(examples) < limit:
                examples.append(
                    osp.relpath(osp.join(dirpath, name), directory))
            if count >= _MAX_SCANNED:
                return count, examples
    return count, examples


def empty_split_message(dataset) -> str:
    """Why ``dataset`` (a ``BaseSegDataset``) found no sample.

    Names the split file or the image directory, the suffixes searched and,
    for a local directory, whether it exists and what else it holds.

    Args:
        dataset: A dataset whose ``load_data_list`` returned nothing.

    Returns:
        str: The message, ending with what to check.
    """
    name = type(dataset).__name__
    img_dir = dataset.data_prefix.get('img_path', None)
    ann_dir = dataset.data_prefix.get('seg_map_path', None)
    img_suffix = getattr(dataset, 'img_suffix', None)
    seg_suffix = getattr(dataset, 'seg_map_suffix', None)
    ann_file = dataset.ann_file
    local = getattr(dataset, 'backend_args', None) is None
    labels = (f"; labels are read from '{ann_dir}' with the suffix "
              f"'{seg_suffix}'" if ann_dir is not None else '')
    if ann_file and not osp.isdir(ann_file):
        return (f"{name} found no sample: the split file '{ann_file}' lists "
                'no image name (it is empty). Each of its lines names one '
                f"sample, read as '{img_dir}/<name>{img_suffix}'{labels}. "
                'Check ann_file and data_root.')
    where = f"no image ending in '{img_suffix}' under '{img_dir}' " \
            '(searched recursively)'
    hint = ''
    if local and img_dir is not None:
        if not osp.isdir(img_dir):
            hint = ' The directory does not exist.'
        else:
            count, examples = _other_files(img_dir)
            if count == 0:
                hint = ' The directory holds no file.'
            else:
                more = '+' if count >= _MAX_SCANNED else ''
                hint = (f' The directory holds {count}{more} other file(s), '
                        f'e.g. {", ".join(map(repr, examples))}.')
    return (f'{name} found no sample: {where}{labels}.{hint} Check data_root '
            f"({dataset.data_root!r}), data_prefix and img_suffix.")


class NonEmptySplitMixin:
    """Refuse a split that yields no sample, naming where it looked.

    Put it first in the bases of a ``BaseSegDataset`` subclass. It checks
    the list :meth:`load_data_list` returns, so:

    - ``lazy_init=True`` still defers the check (and the file listing) to
      :meth:`full_init`, i.e. to the first ``len``/indexing;
    - ``ann_file=''`` (the default) still lists the image directory, and a
      split file is still read line by line, exactly as the parent does;
    - ``test_mode`` changes nothing: an empty split is an error in both
      modes (it already was, as MMEngine's serialisation fails on it).

    Raises:
        FileNotFoundError: From :meth:`load_data_list`, when the image
            directory does not exist or the split yields no sample; the
            message names the directory or split file and the suffixes.
    """

    def load_data_list(self) -> List[dict]:
        """The parent's data list, refused when empty.

        Returns:
            list[dict]: The samples, as the parent class lists them.
        """
        try:
            data_list = super().load_data_list()
        except FileNotFoundError as err:  # a missing image directory
            raise FileNotFoundError(empty_split_message(self)) from err
        if not data_list:
            raise FileNotFoundError(empty_split_message(self))
        return data_list


def check_label_map(label: np.ndarray,
                    seg_map_path: Optional[str],
                    img_path: Optional[str] = None,
                    img_shape: Optional[Sequence[int]] = None) -> None:
    """Refuse a label map that is not a single-channel map of its image.

    Args:
        label (np.ndarray): The label map as loaded (before any resize).
        seg_map_path (str, optional): Its file, named in the errors.
        img_path (str, optional): The image's file, named in the errors.
        img_shape (Sequence[int], optional): The image's ``(H, W)`` as
            loaded (``results['ori_shape']``); ``None`` skips the size
            check.

    Raises:
        ValueError: When the label has channels (e.g. a colour-palette export
            saved as RGB) or its ``(H, W)`` differs from ``img_shape``.
    """
    if label.ndim != 2:
        channels = (f'{label.shape[2]} channels'
                    if label.ndim == 3 else f'{label.ndim} dimension(s)')
        raise ValueError(
            f"Label map '{seg_map_path}' has shape {tuple(label.shape)} "
            f'({channels}): labels must be single-channel class-index PNGs '
            '(H x W, one class id per pixel), not colour images. A colour '
            '(palette) rendering saved as RGB must be converted back to '
            'class indices.')
    if img_shape is not None and tuple(label.shape) != tuple(img_shape[:2]):
        raise ValueError(
            f"Label map '{seg_map_path}' is {label.shape[0]}x{label.shape[1]}"
            f" (H x W) but its image '{img_path}' is {img_shape[0]}x"
            f'{img_shape[1]}: a label must have its image\'s size (compared '
            'as loaded, before any resize).')


# MMSeg's own data sets with the empty-split check, registered under their
# names in sar_plugin.registry (configs with default_scope='sar_plugin' saying
# type='CityscapesDataset' get them; MMSeg's registry keeps MMSeg's); same
# arguments and samples, see NonEmptySplitMixin.
@DATASETS.register_module(name='CityscapesDataset')
class CityscapesDataset(NonEmptySplitMixin, _MMSegCityscapesDataset):
    """MMSeg's ``CityscapesDataset``, refusing an empty split."""


@DATASETS.register_module(name='ADE20KDataset')
class ADE20KDataset(NonEmptySplitMixin, _MMSegADE20KDataset):
    """MMSeg's ``ADE20KDataset``, refusing an empty split."""
