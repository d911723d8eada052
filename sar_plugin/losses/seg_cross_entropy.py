"""MMSeg's ``CrossEntropyLoss`` with ``class_weight`` that works with ignored
pixels, registered as ``CrossEntropyLoss`` in :mod:`sar_plugin.registry`
(configs with ``default_scope='sar_plugin'`` get it; MMSeg's stays as it
is).

MMSeg 1.2.2 averages a class-weighted cross-entropy by
``torch.stack([class_weight[cls] for cls in label])``: a Python loop over the
label map that indexes the weights with the ignore label too, so any batch
with an ignored pixel (255) raises ``IndexError`` and every class-weighted
segmentation config fails on its first step (found training the CamVid
class-weighted baseline; void is 255 there). This subclass passes the
correct ``avg_factor`` itself: the sum of the class weights of the
non-ignored pixels, PyTorch's weighted mean
(``F.cross_entropy(weight=w, ignore_index=i)``), computed on the device
without a loop or a host sync. Without ``class_weight``, with sigmoid or
mask losses, or with an explicit ``avg_factor`` it is MMSeg's loss
unchanged.
"""
from mmseg.models.losses import CrossEntropyLoss as _MMSegCrossEntropyLoss
from mmseg.models.losses.cross_entropy_loss import cross_entropy
from torch import Tensor



class CrossEntropyLoss(_MMSegCrossEntropyLoss):
    """:class:`mmseg.models.losses.CrossEntropyLoss`, with the class-weighted
    mean computed over the non-ignored pixels (see the module docstring).
    Arguments as MMSeg's."""

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight=None,
                avg_factor=None,
                reduction_override=None,
                ignore_index: int = -100,
                **kwargs) -> Tensor:
        reduction = reduction_override or self.reduction
        if (self.class_weight is not None and avg_factor is None
                and reduction == 'mean' and self.cls_criterion is cross_entropy):
            class_weight = cls_score.new_tensor(self.class_weight)
            valid = label != ignore_index
            picked = class_weight[label.where(valid, label.new_zeros(()))]
            avg_factor = (picked * valid).sum()
        return super().forward(
            cls_score,
            label,
            weight,
            avg_factor=avg_factor,
            reduction_override=reduction_override,
            ignore_index=ignore_index,
            **kwargs)
