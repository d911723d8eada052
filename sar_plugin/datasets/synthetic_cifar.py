"""A learnable CIFAR look-alike, written in the official archive format.

:func:`generate_cifar_archive` writes ``cifar-10-batches-py`` or
``cifar-100-python`` with the official file names, pickle keys, dtypes and
shapes, so the real readers (:class:`~.cifar.CIFAR10`,
:class:`~.cifar.CIFAR100`) are what CPU-sized experiments exercise.

Class ``k`` is an oriented stripe texture of a given hue on a shifted square
over a grey noisy background: hue ``k % 5``, stripe orientation ``k // 5 %
4`` and frequency ``k // 20 % 5``. Classes ``k`` and ``k + 5`` share a hue, so
colour alone separates at most 5 groups and a model must see the texture
(CIFAR-10: 5 hues x 2 orientations). Per image the hue, saturation,
brightness, stripe phase, angle and frequency are jittered, the square is
shifted at random and Gaussian noise is added.
"""
import json
import os
import os.path as osp
import pickle
import shutil
import tempfile
from typing import Dict, List

import cv2
import numpy as np
from mmengine.dist import barrier, get_rank
from mmseg.registry import DATASETS

from .cifar import CIFAR10

GENERATOR_VERSION = 1
STAMP_FILE = 'synthetic.json'

_HUES = (0, 36, 72, 108, 144)  # OpenCV hue units (0-179)
_ANGLES = (0.0, 90.0, 45.0, 135.0)  # degrees
_FREQS = (0.6, 1.1, 0.4, 1.5, 0.8)  # radians per pixel
_SIZE = 32
_CHUNK = 2000  # images generated at once (bounds memory)

_KINDS = dict(
    cifar10=dict(dir='cifar-10-batches-py', num_classes=10),
    cifar100=dict(dir='cifar-100-python', num_classes=100))


def make_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``N x 32 x 32 x 3`` uint8 **RGB** images of classes ``labels``."""
    n, s = len(labels), _SIZE
    labels = np.asarray(labels)

    def per_image(values):
        return np.asarray(values, np.float32)[:, None, None]

    hue = per_image([_HUES[k % 5] for k in labels]) + per_image(
        rng.uniform(-5, 5, n))
    theta = np.deg2rad(
        per_image([_ANGLES[k // 5 % 4] for k in labels]) +
        per_image(rng.uniform(-10, 10, n)))
    freq = per_image([_FREQS[k // 20 % 5] for k in labels]) * per_image(
        rng.uniform(0.85, 1.15, n))
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    wave = np.sin(freq * (xx * np.cos(theta) + yy * np.sin(theta)) +
                  per_image(rng.uniform(0, 2 * np.pi, n)))

    fg = np.empty((n, s, s, 3), np.float32)
    fg[..., 0] = np.broadcast_to(hue, (n, s, s)) % 180
    fg[..., 1] = np.broadcast_to(per_image(rng.uniform(130, 230, n)),
                                 (n, s, s))
    fg[..., 2] = (
        per_image(rng.uniform(120, 190, n)) +
        per_image(rng.uniform(45, 70, n)) * wave)
    bg = np.empty_like(fg)
    bg[..., 0] = np.broadcast_to(per_image(rng.uniform(0, 180, n)),
                                 (n, s, s))
    bg[..., 1] = np.broadcast_to(per_image(rng.uniform(0, 50, n)),
                                 (n, s, s))
    bg[..., 2] = np.broadcast_to(per_image(rng.uniform(50, 200, n)),
                                 (n, s, s))

    # the textured square: side 20-28 px, shifted at random
    side = rng.integers(20, 29, n)[:, None, None]
    y0 = (rng.random(n) * (s - side[:, 0, 0] + 1)).astype(int)[:, None, None]
    x0 = (rng.random(n) * (s - side[:, 0, 0] + 1)).astype(int)[:, None, None]
    mask = ((yy >= y0) & (yy < y0 + side) & (xx >= x0) & (xx < x0 + side))
    hsv = np.where(mask[..., None], fg, bg)
    hsv[..., 2] += rng.normal(0, 12, (n, s, s))
    hsv = np.clip(hsv, 0, (179, 255, 255)).astype(np.uint8)
    rgb = cv2.cvtColor(hsv.reshape(n * s, s, 3), cv2.COLOR_HSV2RGB)
    return rgb.reshape(n, s, s, 3)


def _split(num_classes: int, per_class: int, seed: int,
           split_id: int) -> Dict[str, np.ndarray]:
    """Shuffled labels and their images (rows as in the archive)."""
    rng = np.random.default_rng([seed, split_id, num_classes])
    labels = rng.permutation(np.repeat(np.arange(num_classes), per_class))
    data = np.empty((len(labels), 3 * _SIZE * _SIZE), np.uint8)
    for start in range(0, len(labels), _CHUNK):
        rgb = make_images(labels[start:start + _CHUNK], rng)
        # official row layout: R(1024) G(1024) B(1024)
        data[start:start + _CHUNK] = rgb.transpose(0, 3, 1, 2).reshape(
            len(rgb), -1)
    return dict(labels=labels, data=data)


def _batch(data: np.ndarray, labels: np.ndarray, batch_label: str,
           label_keys: Dict[str, List[int]], names: List[str]) -> dict:
    batch = {
        b'batch_label': batch_label.encode(),
        b'data': data,
        b'filenames': [
            f'{names[k]}_s_{i:06d}.png'.encode()
            for i, k in enumerate(labels)
        ],
    }
    batch.update({k.encode(): v for k, v in label_keys.items()})
    return batch


def _dump(obj, path: str) -> None:
    with open(path, 'wb') as f:
        pickle.dump(obj, f, protocol=2)


def generate_cifar_archive(root: str,
                           kind: str = 'cifar10',
                           num_train_per_class: int = 500,
                           num_test_per_class: int = 50,
                           seed: int = 0) -> str:
    """Write a synthetic CIFAR archive under ``root``; return its folder.

    The folder is ``root/cifar-10-batches-py`` (``data_batch_1..5``,
    ``test_batch``, ``batches.meta``) or ``root/cifar-100-python``
    (``train``, ``test``, ``meta``), with the official pickle keys: ``data``
    (``N x 3072`` uint8, rows R, G, B planes), labels as lists of int,
    ``filenames``, ``batch_label``; CIFAR-100 has 20 coarse classes
    (``coarse = fine // 5``). Class names are ``c0``, ``c1``...

    A ``synthetic.json`` stamp records the parameters: an archive with the
    same stamp is reused, one with another stamp replaced, and a folder
    without a stamp (a real archive) is never touched. Written to a temporary
    folder and renamed, so readers never see a partial archive.

    Args:
        root (str): Parent folder of the archive folder.
        kind (str): ``'cifar10'`` or ``'cifar100'``.
        num_train_per_class (int): Training images per class (> 0).
        num_test_per_class (int): Test images per class (> 0).
        seed (int): Generator seed; the archive is a function of the args.

    Returns:
        str: The archive folder.
    """
    if kind not in _KINDS:
        raise ValueError(f'kind must be one of {sorted(_KINDS)}, got {kind!r}')
    if min(num_train_per_class, num_test_per_class) < 1:
        raise ValueError('num_train_per_class and num_test_per_class must be '
                         f'>= 1, got {num_train_per_class} and '
                         f'{num_test_per_class}')
    spec = _KINDS[kind]
    num_classes = spec['num_classes']
    out = osp.join(root, spec['dir'])
    params = dict(
        version=GENERATOR_VERSION,
        kind=kind,
        num_train_per_class=int(num_train_per_class),
        num_test_per_class=int(num_test_per_class),
        seed=int(seed))
    stamp = osp.join(out, STAMP_FILE)
    if osp.isdir(out):
        if not osp.isfile(stamp):
            raise FileExistsError(
                f'{out} exists and is not a synthetic archive (no '
                f'{STAMP_FILE}); refusing to overwrite it: use another root')
        with open(stamp) as f:
            if json.load(f) == params:
                return out

    names = [f'c{k}' for k in range(num_classes)]
    train = _split(num_classes, num_train_per_class, seed, 0)
    test = _split(num_classes, num_test_per_class, seed, 1)
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.cifar-synthetic-', dir=root)
    try:
        if kind == 'cifar10':
            parts = np.array_split(np.arange(len(train['labels'])), 5)
            for i, idx in enumerate(parts, 1):
                labels = train['labels'][idx]
                _dump(
                    _batch(train['data'][idx], labels,
                           f'training batch {i} of 5',
                           dict(labels=labels.tolist()), names),
                    osp.join(tmp, f'data_batch_{i}'))
            _dump(
                _batch(test['data'], test['labels'], 'testing batch 1 of 1',
                       dict(labels=test['labels'].tolist()), names),
                osp.join(tmp, 'test_batch'))
            _dump(
                {
                    b'num_cases_per_batch': len(parts[0]),
                    b'label_names': [n.encode() for n in names],
                    b'num_vis': 3 * _SIZE * _SIZE,
                }, osp.join(tmp, 'batches.meta'))
        else:
            for name, split, batch_label in (('train', train,
                                              'training batch 1 of 1'),
                                             ('test', test,
                                              'testing batch 1 of 1')):
                fine = split['labels']
                _dump(
                    _batch(
                        split['data'], fine, batch_label,
                        dict(
                            fine_labels=fine.tolist(),
                            coarse_labels=(fine // 5).tolist()), names),
                    osp.join(tmp, name))
            _dump(
                {
                    b'fine_label_names': [n.encode() for n in names],
                    b'coarse_label_names':
                    [f'coarse{k}'.encode() for k in range(num_classes // 5)],
                }, osp.join(tmp, 'meta'))
        with open(osp.join(tmp, STAMP_FILE), 'w') as f:
            json.dump(params, f)
        if osp.isdir(out):  # stale synthetic archive (checked above)
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return out


@DATASETS.register_module()
class SyntheticCIFAR10(CIFAR10):
    """:class:`~.cifar.CIFAR10` on a synthetic archive made on first use.

    The archive is generated by :func:`generate_cifar_archive` at
    ``data_root/cifar-10-batches-py`` (rank 0 writes, other ranks wait at a
    barrier), then read by the real CIFAR-10 code, ``imbalance_ratio``
    included: e.g. ``imbalance_ratio=100`` with the default 500 training
    images per class gives 500 ... 5 images per class.

    Args:
        data_root (str): Parent folder of the archive.
        num_train_per_class (int): Training images per class before the
            long-tail subsampling.
        num_test_per_class (int): Test images per class.
        seed (int): Generator seed.
        **kwargs: :class:`~.cifar.CIFAR10` arguments (``split``,
            ``pipeline``, ``imbalance_ratio``, ``imbalance_seed``...).
    """

    def __init__(self,
                 data_root: str,
                 num_train_per_class: int = 500,
                 num_test_per_class: int = 50,
                 seed: int = 0,
                 **kwargs) -> None:
        if get_rank() == 0:
            generate_cifar_archive(data_root, 'cifar10', num_train_per_class,
                                   num_test_per_class, seed)
        barrier()
        super().__init__(data_root=data_root, **kwargs)
