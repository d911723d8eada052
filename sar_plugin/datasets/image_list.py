"""Image-list classification data sets (ImageNet-LT / iNaturalist format).

Like :mod:`~sar_plugin.datasets.cifar`, the data set puts ``classes`` and
``train_class_counts`` (training samples per class, on every split) in its
``metainfo`` for many/medium/few-shot buckets.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.fileio import join_path
from mmengine.utils import is_abs
from mmseg.registry import DATASETS


def _read_list(path: str) -> List[Tuple[str, int]]:
    """``(relative path, label)`` pairs of an image-list file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'image list ann_file not found: {path}')
    items = []
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(maxsplit=1)
            try:
                if len(parts) != 2:
                    raise ValueError
                label = int(parts[1])
            except ValueError:
                raise ValueError(f'{path}:{n}: expected "<image path> <int '
                                 f'label>", got {line!r}') from None
            if label < 0:
                raise ValueError(f'{path}:{n}: label must be >= 0, got '
                                 f'{label}')
            items.append((parts[0], label))
    return items


@DATASETS.register_module()
class ImageListDataset(BaseDataset):
    """Images listed in a text file, ImageNet-LT / iNaturalist format.

    Each non-empty line of ``ann_file`` is ``<relative/path.jpg> <label>``:
    the last whitespace-separated token is the integer label, everything
    before it the path (which may contain spaces), relative to
    ``data_root/data_prefix['img_path']``. Data infos are
    ``dict(img_path, gt_label, sample_idx)``; start the pipeline with
    ``dict(type='LoadImageFromFile')``.

    ``metainfo['train_class_counts']`` counts the labels of
    ``train_ann_file``, which defaults to ``ann_file``: that is right for the
    training list, but **pass the training list as ``train_ann_file`` for the
    val/test lists** so the many/medium/few buckets use training counts.

    Relative ``ann_file``, ``train_ann_file`` and ``classes`` paths are taken
    under ``data_root``, as MMEngine does for ``ann_file``.

    Args:
        data_root (str): Root folder.
        ann_file (str): The image list.
        data_prefix (dict): ``dict(img_path=...)``, the image folder.
        classes (Sequence[str] | str, optional): Class names, or a text file
            with one name per line; None means ``('0', ..., str(max_label))``
            with ``max_label`` the largest label of both lists.
        train_ann_file (str, optional): The training list, for
            ``train_class_counts``.
        **kwargs: Other :class:`~mmengine.dataset.BaseDataset` arguments.
    """

    def __init__(self,
                 data_root: str,
                 ann_file: str,
                 data_prefix: Optional[Dict[str, str]] = None,
                 classes: Union[None, str, Sequence[str]] = None,
                 train_ann_file: Optional[str] = None,
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        if not ann_file:
            raise ValueError('ImageListDataset needs ann_file, the image '
                             'list "<path> <label>" per line')
        ann_path = self._under_root(data_root, ann_file)
        self._items = _read_list(ann_path)
        train_path = ann_path if train_ann_file is None else \
            self._under_root(data_root, train_ann_file)
        train_items = (
            self._items if train_ann_file is None else _read_list(train_path))
        max_label = max((lab for _, lab in self._items + train_items),
                        default=-1)
        if classes is None:
            classes = tuple(str(i) for i in range(max_label + 1))
        elif isinstance(classes, str):
            path = self._under_root(data_root, classes)
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'classes file not found: {path} (classes must be a '
                    'list of names or a text file with one name a line)')
            with open(path, encoding='utf-8') as f:
                classes = tuple(ln.strip() for ln in f if ln.strip())
        else:
            classes = tuple(classes)
        if max_label >= len(classes):
            for path, items in ((ann_path, self._items),
                                (train_path, train_items)):
                bad = next(((rel, lab) for rel, lab in items
                            if lab >= len(classes)), None)
                if bad is not None:
                    raise ValueError(
                        f'{path}: label {bad[1]} of {bad[0]} is out of range '
                        f'for the {len(classes)} classes given '
                        '(`classes`); labels must be in [0, '
                        f'{len(classes) - 1}]')
        counts = np.bincount([lab for _, lab in train_items],
                             minlength=len(classes)).astype(np.int64)
        meta = dict(classes=classes, train_class_counts=counts.tolist())
        meta.update(metainfo or {})
        super().__init__(
            data_root=data_root,
            ann_file=ann_file,
            data_prefix=dict(img_path='') if data_prefix is None else
            data_prefix,
            metainfo=meta,
            **kwargs)

    @staticmethod
    def _under_root(data_root: str, path: str) -> str:
        return path if is_abs(path) or not data_root else join_path(
            data_root, path)

    def load_data_list(self) -> List[dict]:
        prefix = self.data_prefix.get('img_path', '') or ''
        data_list = [
            dict(
                img_path=join_path(prefix, rel) if prefix else rel,
                gt_label=label,
                sample_idx=i) for i, (rel, label) in enumerate(self._items)
        ]
        del self._items
        return data_list

    def get_cat_ids(self, idx: int) -> List[int]:
        return [self.get_data_info(idx)['gt_label']]
