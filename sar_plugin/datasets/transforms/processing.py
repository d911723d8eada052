"""Classification augmentations: the CIFAR pad-and-crop and the ImageNet
random-resized crop.

Flipping uses the stock ``dict(type='RandomFlip', prob=0.5,
direction='horizontal')``; it works on these result dicts as they carry no
segmentation map.
"""
from typing import Tuple, Union

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomPadCrop(BaseTransform):
    """Pad every side by ``padding`` pixels, then crop a random ``size``
    window: the standard CIFAR augmentation.

    The offset is drawn from :mod:`numpy`'s global RNG, as in mmcv's
    transforms, so MMEngine's ``randomness=dict(seed=...)`` makes it
    reproducible.

    Required keys: ``img``. Modified: ``img``, ``img_shape``.

    Args:
        size (int | tuple[int, int]): Crop ``(h, w)``; an int means square.
        padding (int): Pixels added on each side (>= 0).
        pad_val (float | tuple): Padding value (per channel if a tuple).
    """

    def __init__(self,
                 size: Union[int, Tuple[int, int]] = 32,
                 padding: int = 4,
                 pad_val: Union[float, Tuple[float, ...]] = 0) -> None:
        size = (size, size) if isinstance(size, int) else tuple(size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError('RandomPadCrop size must be a positive int or '
                             f'an (h, w) pair, got {size}')
        if not isinstance(padding, int) or padding < 0:
            raise ValueError('RandomPadCrop padding must be an int >= 0, got '
                             f'{padding!r}')
        self.size = size
        self.padding = padding
        self.pad_val = pad_val

    def transform(self, results: dict) -> dict:
        img = results['img']
        pad_val = self.pad_val
        if img.ndim == 3 and np.isscalar(pad_val):
            # cv2 fills only the first channel with a bare scalar
            pad_val = (pad_val, ) * img.shape[2]
        if self.padding:
            img = mmcv.impad(img, padding=self.padding, pad_val=pad_val)
        h, w = img.shape[:2]
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(f'RandomPadCrop size {self.size} is larger than '
                             f'the padded image ({h}, {w})')
        y = np.random.randint(0, h - ch + 1)
        x = np.random.randint(0, w - cw + 1)
        results['img'] = img[y:y + ch, x:x + cw]
        results['img_shape'] = (ch, cw)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, '
                f'padding={self.padding}, pad_val={self.pad_val})')


@TRANSFORMS.register_module()
class RandomResizedCrop(BaseTransform):
    """The Inception / ImageNet training crop: a random window covering a
    ``scale`` share of the image area with an aspect ratio in ``ratio``
    (log-uniform), resized to ``size``.

    Up to ``max_attempts`` windows are drawn; when none fits, the largest
    central window with a ratio within ``ratio`` is used (as torchvision).
    Random draws use :mod:`numpy`'s global RNG (seeded by MMEngine).

    Required keys: ``img``. Modified: ``img``, ``img_shape``.

    Args:
        size (int | tuple[int, int]): Output ``(h, w)``.
        scale (tuple[float, float]): Area share range. Default
            ``(0.08, 1.0)``.
        ratio (tuple[float, float]): Width / height range. Default
            ``(3/4, 4/3)``.
        max_attempts (int): Default 10.
        interpolation (str): ``mmcv.imresize`` interpolation. Default
            ``'bilinear'``.
    """

    def __init__(self,
                 size: Union[int, Tuple[int, int]] = 224,
                 scale: Tuple[float, float] = (0.08, 1.0),
                 ratio: Tuple[float, float] = (3. / 4., 4. / 3.),
                 max_attempts: int = 10,
                 interpolation: str = 'bilinear') -> None:
        size = (size, size) if isinstance(size, int) else tuple(size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError('RandomResizedCrop size must be a positive int '
                             f'or an (h, w) pair, got {size}')
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError('RandomResizedCrop scale must satisfy 0 < min '
                             f'<= max <= 1, got {scale}')
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError('RandomResizedCrop ratio must satisfy 0 < min '
                             f'<= max, got {ratio}')
        self.size = size
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.max_attempts = max_attempts
        self.interpolation = interpolation

    def window(self, h: int, w: int) -> Tuple[int, int, int, int]:
        """A crop ``(y, x, ch, cw)`` of an ``h x w`` image."""
        area = h * w
        log_ratio = np.log(self.ratio)
        for _ in range(self.max_attempts):
            target = area * np.random.uniform(*self.scale)
            aspect = np.exp(np.random.uniform(*log_ratio))
            cw = int(round(np.sqrt(target * aspect)))
            ch = int(round(np.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                y = np.random.randint(0, h - ch + 1)
                x = np.random.randint(0, w - cw + 1)
                return y, x, ch, cw
        aspect = w / h  # fallback: central crop, ratio clipped
        if aspect < self.ratio[0]:
            cw, ch = w, int(round(w / self.ratio[0]))
        elif aspect > self.ratio[1]:
            ch, cw = h, int(round(h * self.ratio[1]))
        else:
            ch, cw = h, w
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def transform(self, results: dict) -> dict:
        img = results['img']
        y, x, ch, cw = self.window(*img.shape[:2])
        img = mmcv.imresize(img[y:y + ch, x:x + cw],
                            (self.size[1], self.size[0]),
                            interpolation=self.interpolation)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, scale='
                f'{self.scale}, ratio={self.ratio})')
