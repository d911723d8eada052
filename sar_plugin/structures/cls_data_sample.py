"""The data sample of image classification: one label per image."""
from typing import Union

import numpy as np
import torch
from mmengine.structures import BaseDataElement
from torch import Tensor


def _label_tensor(label: Union[int, np.integer, Tensor, np.ndarray]) -> Tensor:
    """``label`` as a LongTensor of shape ``(1,)``."""
    if isinstance(label, (np.ndarray, Tensor)):
        label = torch.as_tensor(label)
        if label.numel() != 1 or label.is_floating_point():
            raise ValueError('gt_label must hold exactly one integer class '
                             f'index, got {label.dtype} of shape '
                             f'{tuple(label.shape)}')
        return label.reshape(1).long()
    if isinstance(label, (bool, np.bool_)) or not isinstance(
            label, (int, np.integer)):
        raise TypeError('gt_label must be an int or a one-element tensor, '
                        f'got {type(label).__name__}')
    return torch.tensor([int(label)], dtype=torch.long)


class ClsDataSample(BaseDataElement):
    """Annotations and predictions of one classified image.

    Fields (all :class:`torch.Tensor`, optional):

    - ``gt_label``: ground-truth class, LongTensor of shape ``(1,)``.
    - ``pred_label``: predicted class, LongTensor of shape ``(1,)``.
    - ``pred_score``: class scores, FloatTensor of shape ``(num_classes,)``.

    Image meta information (``img_path``, ``ori_shape``...) goes to
    ``metainfo`` as in every MMEngine data element.

    Examples:
        >>> sample = ClsDataSample().set_gt_label(3)
        >>> sample.gt_label
        tensor([3])
    """

    def set_gt_label(self, label: Union[int, Tensor]) -> 'ClsDataSample':
        """Set ``gt_label`` from an int or a one-element tensor.

        Returns:
            ClsDataSample: ``self``, for chaining.
        """
        self.gt_label = _label_tensor(label)
        return self

    def set_pred_score(self, score: Tensor) -> 'ClsDataSample':
        """Set ``pred_score`` (shape ``(num_classes,)``) and ``pred_label``
        (its argmax, shape ``(1,)``).

        Returns:
            ClsDataSample: ``self``, for chaining.
        """
        if not isinstance(score, Tensor) or score.dim() != 1:
            raise ValueError('pred_score must be a 1-D tensor of class '
                             f'scores, got {getattr(score, "shape", score)}')
        self.pred_score = score
        self.pred_label = score.argmax().reshape(1)
        return self

    @property
    def gt_label(self) -> Tensor:
        return self._gt_label

    @gt_label.setter
    def gt_label(self, value: Tensor) -> None:
        self.set_field(value, '_gt_label', dtype=torch.Tensor)

    @gt_label.deleter
    def gt_label(self) -> None:
        del self._gt_label

    @property
    def pred_label(self) -> Tensor:
        return self._pred_label

    @pred_label.setter
    def pred_label(self, value: Tensor) -> None:
        self.set_field(value, '_pred_label', dtype=torch.Tensor)

    @pred_label.deleter
    def pred_label(self) -> None:
        del self._pred_label

    @property
    def pred_score(self) -> Tensor:
        return self._pred_score

    @pred_score.setter
    def pred_score(self, value: Tensor) -> None:
        self.set_field(value, '_pred_score', dtype=torch.Tensor)

    @pred_score.deleter
    def pred_score(self) -> None:
        del self._pred_score
