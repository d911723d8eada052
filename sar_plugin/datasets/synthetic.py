"""A deterministic, long-tailed segmentation set that the project makes itself.

Images are textured shapes on a textured background, written as PNG files in
MMSeg's ``img_dir/{train,val}`` / ``ann_dir/{train,val}`` layout and read back
by MMSeg's real loading pipeline. Class ``k`` covers a share of the pixels
proportional to ``imbalance_ratio ** (-k / (K - 1))``, so class 0 is the head
and class ``K-1`` the tail, about ``imbalance_ratio : 1``.

Classes are told apart by colour *and* texture: classes ``k`` and ``k + 4``
share a hue and differ only in stripe orientation and frequency, so the tail
classes are confusable with head classes, as in real long-tailed data.
"""
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.dist import barrier, get_rank
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .checks import NonEmptySplitMixin

GENERATOR_VERSION = 1

_HUES = (0, 30, 60, 100, 140, 170)  # OpenCV hue units (0-179)


def class_shares(num_classes: int, imbalance_ratio: float) -> np.ndarray:
    """Target pixel share per class: a power law, summing to 1."""
    k = np.arange(num_classes, dtype=np.float64)
    shares = float(imbalance_ratio)**(-k / max(num_classes - 1, 1))
    return shares / shares.sum()


def _class_style(k: int) -> Dict[str, float]:
    """Colour and texture of class ``k`` (deterministic)."""
    return dict(
        hue=_HUES[k % 4],
        sat=200 - 25 * (k // 4 % 3),
        val=170 + 15 * (k % 3),
        theta=np.deg2rad((37 * k) % 180),
        freq=0.25 + 0.15 * ((k * 3) % 5),
    )


def _texture(k: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """An ``h x w x 3`` uint8 RGB texture of class ``k``."""
    st = _class_style(k)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    wave = np.sin(st['freq'] * (xx * np.cos(st['theta']) +
                                yy * np.sin(st['theta'])) + phase)
    hsv = np.empty((h, w, 3), np.float32)
    hsv[..., 0] = st['hue'] + rng.uniform(-4, 4)
    hsv[..., 1] = st['sat'] + rng.uniform(-20, 20)
    hsv[..., 2] = st['val'] + 55 * wave + rng.normal(0, 18, (h, w))
    hsv = np.clip(hsv, 0, [179, 255, 255]).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _blob_mask(h: int, w: int, area: float,
               rng: np.random.Generator) -> np.ndarray:
    """A random ellipse or polygon of roughly ``area`` pixels."""
    mask = np.zeros((h, w), np.uint8)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    if rng.random() < 0.5:
        aspect = rng.uniform(0.4, 2.5)
        a = np.sqrt(area / np.pi * aspect)
        b = np.sqrt(area / np.pi / aspect)
        cv2.ellipse(mask, (int(cx), int(cy)), (max(int(a), 1), max(int(b), 1)),
                    rng.uniform(0, 180), 0, 360, 1, -1)
    else:
        n = int(rng.integers(3, 8))
        radius = np.sqrt(2 * area / (n * np.sin(2 * np.pi / n)))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = radius * rng.uniform(0.7, 1.3, n)
        pts = np.stack([cx + radii * np.cos(angles),
                        cy + radii * np.sin(angles)], 1)
        cv2.fillPoly(mask, [pts.astype(np.int32)], 1)
    return mask.astype(bool)


def make_sample(index: int, num_classes: int, size: Tuple[int, int],
                imbalance_ratio: float,
                seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Image (``H x W x 3`` RGB uint8) and label (``H x W`` uint8) number
    ``index``; a pure function of its arguments."""
    h, w = size
    rng = np.random.default_rng([seed, index])
    shares = class_shares(num_classes, imbalance_ratio)
    label = np.zeros((h, w), np.uint8)
    image = _texture(0, h, w, rng)
    presence = 0.6
    for k in range(1, num_classes):  # larger classes first, tails on top
        if rng.random() > presence:
            continue
        target = shares[k] / presence * h * w * rng.lognormal(0, 0.3)
        n_blobs = int(rng.integers(1, 4))
        mask = np.zeros((h, w), bool)
        for part in rng.dirichlet(np.ones(n_blobs)):
            mask |= _blob_mask(h, w, max(target * part, 4.0), rng)
        label[mask] = k
        image[mask] = _texture(k, h, w, rng)[mask]
    # global illumination change, so colour alone is not enough
    gain = rng.uniform(0.75, 1.25)
    image = np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return image, label


def _matching_manifest(root: str, params: dict) -> Optional[Dict]:
    """``root``'s manifest if it was generated with ``params``, else None."""
    path = osp.join(root, 'manifest.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        manifest = json.load(f)
    return manifest if manifest.get('params') == params else None


def generate_synthetic_longtail(root: str,
                                num_classes: int = 8,
                                num_train: int = 300,
                                num_val: int = 60,
                                size: Sequence[int] = (128, 128),
                                imbalance_ratio: float = 100.0,
                                seed: int = 0,
                                num_test: int = 0) -> Dict:
    """Write the data set under ``root`` (atomically) and return its manifest.

    Splits ``train``, ``val`` and, with ``num_test``, ``test``: samples
    ``0..num_train-1``, the next ``num_val`` and the next ``num_test`` of
    :func:`make_sample` (so adding a test split leaves the other two as
    they were). Generation is skipped when ``root/manifest.json`` already
    describes the same parameters. Written to a temporary sibling directory and renamed, so
    concurrent processes never see a half-written set.
    """
    params = dict(
        version=GENERATOR_VERSION,
        num_classes=int(num_classes),
        num_train=int(num_train),
        num_val=int(num_val),
        size=[int(s) for s in size],
        imbalance_ratio=float(imbalance_ratio),
        seed=int(seed))
    if num_test:
        params['num_test'] = int(num_test)
    existing = _matching_manifest(root, params)
    if existing is not None:
        return existing
    parent = osp.dirname(osp.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.synthetic-', dir=parent)
    counts = np.zeros(num_classes, np.int64)
    splits = (('train', 0, num_train), ('val', num_train, num_val),
              ('test', num_train + num_val, num_test))
    for split, start, count in splits:
        if split == 'test' and not count:
            continue
        os.makedirs(osp.join(tmp, 'img_dir', split))
        os.makedirs(osp.join(tmp, 'ann_dir', split))
        for i in range(start, start + count):
            image, label = make_sample(i, num_classes, tuple(size),
                                       imbalance_ratio, seed)
            stem = f'{split}_{i:05d}'
            cv2.imwrite(osp.join(tmp, 'img_dir', split, stem + '.png'),
                        image[..., ::-1])
            cv2.imwrite(osp.join(tmp, 'ann_dir', split, stem + '.png'), label)
            if split == 'train':
                counts += np.bincount(label.ravel(), minlength=num_classes)
    manifest = dict(
        params=params,
        classes=synthetic_classes(num_classes),
        train_pixel_counts=counts.tolist(),
        train_pixel_share=(counts / counts.sum()).round(6).tolist(),
        target_share=class_shares(num_classes, imbalance_ratio).round(6).tolist())
    with open(osp.join(tmp, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=2)
    # another process (a parallel sweep run) may have finished first: keep
    # its set, which may be being read, rather than replace it
    existing = _matching_manifest(root, params)
    if existing is not None:
        shutil.rmtree(tmp, ignore_errors=True)
        return existing
    if osp.isdir(root):
        shutil.rmtree(root, ignore_errors=True)
    try:
        os.replace(tmp, root)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def synthetic_classes(num_classes: int) -> List[str]:
    return [f'c{k}' for k in range(num_classes)]


def synthetic_palette(num_classes: int) -> List[List[int]]:
    palette = []
    for k in range(num_classes):
        st = _class_style(k)
        hsv = np.uint8([[[st['hue'], st['sat'], 230 - 60 * (k // 4 % 2)]]])
        palette.append(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].tolist())
    return palette


@DATASETS.register_module()
class SyntheticLongTailDataset(NonEmptySplitMixin, BaseSegDataset):
    """Long-tailed textured-shapes segmentation, generated on first use.

    The set lives at ``data_root`` in MMSeg's ``img_dir``/``ann_dir`` layout
    and is (re)generated there by :func:`generate_synthetic_longtail` when
    missing or made with other parameters (rank 0 writes, other ranks wait).
    Its metainfo carries ``train_class_counts`` (training pixels per class,
    from the manifest), which the long-tail metrics bucket by. A split that
    yields no sample (e.g. ``generate=False`` on a missing set) raises a
    :class:`FileNotFoundError` naming the directory and suffixes searched
    (:class:`~sar_plugin.datasets.checks.NonEmptySplitMixin`).

    Args:
        data_root (str): Where the set is (or will be) written.
        num_classes (int): K; class 0 is the most frequent.
        num_train (int): Number of training images.
        num_val (int): Number of validation images.
        size (Sequence[int]): Image ``(H, W)``.
        imbalance_ratio (float): Pixel share of class 0 over class K-1.
        seed (int): Generator seed.
        num_test (int): Number of held-out test images (``img_dir/test``),
            0 for none.
        generate (bool): Generate when missing (else just read).
        **kwargs: :class:`~mmseg.datasets.BaseSegDataset` arguments
            (``data_prefix``, ``pipeline``...).
    """

    def __init__(self,
                 data_root: str,
                 num_classes: int = 8,
                 num_train: int = 300,
                 num_val: int = 60,
                 size: Sequence[int] = (128, 128),
                 imbalance_ratio: float = 100.0,
                 seed: int = 0,
                 num_test: int = 0,
                 generate: bool = True,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        if generate:
            if get_rank() == 0:
                generate_synthetic_longtail(data_root, num_classes, num_train,
                                            num_val, size, imbalance_ratio,
                                            seed, num_test)
            barrier()
        base_meta = dict(
            classes=tuple(synthetic_classes(num_classes)),
            palette=synthetic_palette(num_classes))
        manifest_path = osp.join(data_root, 'manifest.json')
        if osp.isfile(manifest_path):  # buckets for the long-tail metrics
            with open(manifest_path) as f:
                counts = json.load(f).get('train_pixel_counts')
            if counts is not None and len(counts) == num_classes:
                base_meta['train_class_counts'] = [int(c) for c in counts]
        base_meta.update(metainfo or {})
        super().__init__(
            data_root=data_root,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            metainfo=base_meta,
            **kwargs)
