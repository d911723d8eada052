"""Packing a classification sample: the image as a tensor and a
:class:`~sar_plugin.structures.ClsDataSample`."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ...structures import ClsDataSample


@TRANSFORMS.register_module()
class PackClsInputs(BaseTransform):
    """Pack an image and its class label for a classifier.

    Required keys: ``img`` (``H x W`` or ``H x W x C`` array, BGR as loaded by
    mmcv). Optional: ``gt_label`` (int) and the ``meta_keys``.

    Output: ``dict(inputs=Tensor[C, H, W], data_samples=ClsDataSample)``; the
    tensor keeps the image dtype (uint8) and is contiguous, the sample has
    ``gt_label`` (LongTensor of shape ``(1,)``) when given and the meta keys
    that are present in its ``metainfo``.

    Args:
        meta_keys (Sequence[str]): Keys copied to the sample's metainfo.
    """

    def __init__(self,
                 meta_keys: Sequence[str] = ('img_path', 'ori_shape',
                                             'img_shape', 'flip',
                                             'flip_direction', 'sample_idx')
                 ) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        if 'img' not in results:
            raise KeyError("PackClsInputs needs results['img'] (load the "
                           'image first, e.g. with LoadImageFromFile)')
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0,
                                                                     1)))
        sample = ClsDataSample()
        if 'gt_label' in results:
            sample.set_gt_label(results['gt_label'])
        sample.set_metainfo(
            {k: results[k]
             for k in self.meta_keys if k in results})
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
