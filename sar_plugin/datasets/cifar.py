"""CIFAR-10/100 classification data sets, optionally long-tailed, read from
the official python archives.

Every data set puts two keys in its ``metainfo``:

- ``classes``: tuple of class names;
- ``train_class_counts``: list of ints, the number of *training* samples per
  class (after long-tail subsampling), on the training and the test split
  alike, for many/medium/few-shot buckets.
"""
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import BaseDataset
from mmseg.registry import DATASETS

from ..utils.safe_pickle import safe_load


def longtail_counts(n_max: int, num_classes: int, rho: float) -> List[int]:
    """Per-class counts of an exponentially long-tailed split.

    Class ``i`` keeps ``int(n_max * (1 / rho) ** (i / (K - 1)))`` samples:
    the LDAM-DRW convention (Cao et al., 2019), i.e. ``n_max`` for class 0
    down to ``n_max / rho`` for class ``K - 1``, truncated with ``int()``.

    Args:
        n_max (int): Count of the head class (class 0).
        num_classes (int): K.
        rho (float): Imbalance ratio ``n_0 / n_{K-1}``, >= 1.

    Returns:
        list[int]: The K counts, non-increasing.
    """
    if rho is None or float(rho) < 1:
        raise ValueError(f'imbalance_ratio must be a number >= 1, got {rho!r}')
    if num_classes < 1 or n_max < 0:
        raise ValueError('longtail_counts needs num_classes >= 1 and n_max '
                         f'>= 0, got {num_classes} and {n_max}')
    if num_classes == 1:
        return [int(n_max)]
    factor = 1.0 / float(rho)
    return [
        int(n_max * factor**(i / (num_classes - 1.0)))
        for i in range(num_classes)
    ]


def longtail_indices(labels: np.ndarray, num_classes: int, rho: float,
                     seed: int = 0) -> np.ndarray:
    """Indices of a long-tailed subset of a (balanced) labelled set.

    ``n_max`` is the smallest class count (the per-class count of a balanced
    set), the counts are :func:`longtail_counts`. Class ``i`` keeps the first
    ``n_i`` of its samples in the order of a permutation drawn, class after
    class in index order, from one ``numpy.random.default_rng(seed)``; the
    result is sorted, so kept samples stay in archive order.
    """
    labels = np.asarray(labels)
    per_class = np.bincount(labels, minlength=num_classes)
    counts = longtail_counts(int(per_class.min()), num_classes, rho)
    rng = np.random.default_rng(seed)
    keep = []
    for i, n in enumerate(counts):
        idx = np.flatnonzero(labels == i)
        keep.append(idx[rng.permutation(len(idx))[:n]])
    return np.sort(np.concatenate(keep))


def _get(d: dict, key: str):
    """``d[key]`` for pickles loaded with ``encoding='bytes'`` (bytes keys)
    or written by Python 3 (str keys)."""
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise KeyError(f'CIFAR pickle has no {key!r} entry (keys: '
                   f'{sorted(map(str, d))})')


def _unpickle(path: str) -> dict:
    """A CIFAR archive file's dict, read with :func:`safe_load`.

    Only numpy arrays and plain Python data are unpickled: a file that
    references any other global (e.g. a crafted ``data_batch_1`` calling
    ``os.system``) raises :class:`~sar_plugin.utils.safe_pickle.
    UnsafePickleError` naming the file, before anything runs.

    Args:
        path (str): The archive file.

    Returns:
        dict: Its content (``bytes`` keys for the official archives).
    """
    batch = safe_load(path, encoding='bytes', what='CIFAR archive file')
    if not isinstance(batch, dict):
        raise ValueError(f'{path}: a CIFAR archive file must hold a dict, '
                         f'got {type(batch).__name__}')
    return batch


def _decode(names: Sequence) -> Tuple[str, ...]:
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


@DATASETS.register_module()
class CIFAR10(BaseDataset):
    """CIFAR-10 from the official python archive, optionally long-tailed.

    Reads ``data_root/cifar-10-batches-py/`` (``data_root`` may also be that
    folder), as extracted from
    https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz. Images are held
    in memory as ``32 x 32 x 3`` uint8 **BGR** arrays (mmcv's convention, so
    use a data preprocessor with ``bgr_to_rgb=True`` as for files); a data
    info is ``dict(img, img_shape, ori_shape, gt_label, sample_idx)`` and the
    pipeline needs no loading transform.

    With ``imbalance_ratio=rho`` the training split becomes CIFAR-LT: class
    ``i`` keeps :func:`longtail_counts` samples, chosen by
    :func:`longtail_indices` with ``imbalance_seed``. The test split stays
    balanced. ``metainfo['train_class_counts']`` gives the training counts on
    both splits.

    Args:
        data_root (str): Folder holding (or being) the archive folder.
        split (str): ``'train'`` or ``'test'``.
        pipeline (list): Transforms.
        imbalance_ratio (float, optional): rho >= 1; None keeps all samples.
        imbalance_seed (int): Seed of the long-tail sample choice.
        **kwargs: Other :class:`~mmengine.dataset.BaseDataset` arguments
            (``metainfo``, ``indices``, ``test_mode``, ``serialize_data``...).
    """

    ARCHIVE_DIR = 'cifar-10-batches-py'
    META_FILE = 'batches.meta'
    SPLIT_FILES = dict(
        train=[f'data_batch_{i}' for i in range(1, 6)], test=['test_batch'])
    LABEL_KEY = 'labels'
    NAMES_KEY = 'label_names'

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 pipeline: Sequence = (),
                 imbalance_ratio: Optional[float] = None,
                 imbalance_seed: int = 0,
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        if split not in self.SPLIT_FILES:
            raise ValueError(f'{type(self).__name__} split must be one of '
                             f'{sorted(self.SPLIT_FILES)}, got {split!r}')
        if imbalance_ratio is not None and not float(imbalance_ratio) >= 1:
            raise ValueError('imbalance_ratio must be None or a number >= 1 '
                             f'(n_head / n_tail), got {imbalance_ratio!r}')
        self.split = split
        self.imbalance_ratio = imbalance_ratio
        self.imbalance_seed = imbalance_seed
        self.archive_dir = self._find_archive(data_root)
        classes = _decode(
            _get(
                _unpickle(osp.join(self.archive_dir, self.META_FILE)),
                self.NAMES_KEY))
        num_classes = len(classes)

        train_images, train_labels = self._read_split('train')
        keep = self._keep(train_labels, num_classes)
        counts = np.bincount(train_labels[keep], minlength=num_classes)
        if split == 'train':
            self._images, self._labels = train_images[keep], train_labels[keep]
        else:
            del train_images
            self._images, self._labels = self._read_split(split)
        if self._labels.size and self._labels.max() >= num_classes:
            raise ValueError(f'{self.archive_dir}: label '
                             f'{self._labels.max()} out of range for '
                             f'{num_classes} classes')
        meta = dict(classes=classes, train_class_counts=counts.tolist())
        meta.update(metainfo or {})
        super().__init__(
            data_root=data_root,
            pipeline=list(pipeline),
            metainfo=meta,
            **kwargs)

    def _find_archive(self, data_root: str) -> str:
        """The archive folder: ``data_root/ARCHIVE_DIR`` or ``data_root``."""
        for path in (osp.join(data_root, self.ARCHIVE_DIR), data_root):
            if osp.isfile(osp.join(path, self.META_FILE)):
                return path
        raise FileNotFoundError(
            f'{type(self).__name__}: no {self.ARCHIVE_DIR}/{self.META_FILE} '
            f'under data_root={data_root!r}; set data_root to the folder '
            f'holding the extracted {self.ARCHIVE_DIR} (or to that folder '
            'itself)')

    def _keep(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        """Training indices kept (all, or the long-tailed subset)."""
        if self.imbalance_ratio is None:
            return np.arange(len(labels))
        return longtail_indices(labels, num_classes, self.imbalance_ratio,
                                self.imbalance_seed)

    def _read_split(self, split: str) -> Tuple[np.ndarray, np.ndarray]:
        """``(images N x 32 x 32 x 3 uint8 BGR, labels N int64)``."""
        images, labels = [], []
        for name in self.SPLIT_FILES[split]:
            path = osp.join(self.archive_dir, name)
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'{type(self).__name__}: missing {path} (split {split!r})'
                    f' in the archive {self.archive_dir}')
            batch = _unpickle(path)
            data = np.asarray(_get(batch, 'data'), dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3072:
                raise ValueError(f'{path}: data must be N x 3072 uint8, got '
                                 f'shape {data.shape}')
            # rows are R(1024) G(1024) B(1024), each 32 x 32 row-major
            rgb = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            images.append(rgb[..., ::-1])
            batch_labels = np.asarray(_get(batch, self.LABEL_KEY))
            if batch_labels.ndim != 1 or not (
                    batch_labels.size == 0
                    or np.issubdtype(batch_labels.dtype, np.integer)):
                raise ValueError(
                    f'{path}: {self.LABEL_KEY!r} must be a list of integers, '
                    f'got an array of shape {batch_labels.shape} '
                    f'({batch_labels.dtype})')
            if len(batch_labels) != len(data):
                raise ValueError(
                    f'{path}: {len(data)} images but {len(batch_labels)} '
                    f'{self.LABEL_KEY!r}: every image needs its label')
            if batch_labels.size and batch_labels.min() < 0:
                raise ValueError(f'{path}: negative label '
                                 f'{batch_labels.min()} in '
                                 f'{self.LABEL_KEY!r}')
            labels.append(batch_labels.astype(np.int64))
        return (np.ascontiguousarray(np.concatenate(images)),
                np.concatenate(labels))

    def load_data_list(self) -> List[dict]:
        data_list = [
            dict(
                img=img,
                img_shape=(32, 32),
                ori_shape=(32, 32),
                gt_label=int(label),
                sample_idx=i)
            for i, (img, label) in enumerate(zip(self._images, self._labels))
        ]
        del self._images, self._labels
        return data_list

    def get_cat_ids(self, idx: int) -> List[int]:
        return [self.get_data_info(idx)['gt_label']]


@DATASETS.register_module()
class CIFAR100(CIFAR10):
    """CIFAR-100 (fine labels) from ``data_root/cifar-100-python/``.

    Same behaviour and arguments as :class:`CIFAR10`; the archive is
    https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz.
    """

    ARCHIVE_DIR = 'cifar-100-python'
    META_FILE = 'meta'
    SPLIT_FILES = dict(train=['train'], test=['test'])
    LABEL_KEY = 'fine_labels'
    NAMES_KEY = 'fine_label_names'
