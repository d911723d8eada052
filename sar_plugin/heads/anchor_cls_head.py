"""AnchorClsHead: a linear classifier whose pooled input feature gets the
same anchor losses ``SARHead`` gives the pixels of a segmentation head."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..losses.builder import add_anchor_terms, build_anchor_losses
from ..utils.labels import check_sample_labels
from ..structures import ClsDataSample


@MODELS.register_module()
class AnchorClsHead(BaseModule):
    """Linear classification head with anchor losses.

    Training: ``loss_cls(fc(dropout(feat)), labels)`` plus every anchor loss
    called as ``loss(feat, labels, classifier=self.fc)`` on the ``N x C``
    pooled feature, exactly as :class:`~sar_plugin.heads.SARHead` calls
    them with ``N x C x h x w`` pixel features and ``conv_seg``. Testing:
    ``softmax(fc(feat))`` into each sample's ``pred_score``/``pred_label``.

    Args:
        num_classes (int): K.
        in_channels (int): C, the pooled feature size.
        loss_cls (dict): Classification loss; default
            ``ClsCrossEntropyLoss`` (label smoothing, class-balanced
            weights).
        anchor_losses (dict | list[dict], optional): Anchor loss configs;
            ``num_classes``, ``channels`` and ``ignore_index`` are filled in
            as for SARHead.
        ignore_index (int): Label the anchor losses ignore. Image labels
            have no ignore value, so the default -100 (PyTorch's) lies
            outside every ``[0, K)``: the losses' own default, 255, is a
            real class of ImageNet-LT and iNaturalist.
        dropout_ratio (float): Dropout before ``fc``. Default 0.
        topk (Sequence[int]): Accuracies logged in training (``acc_top1``).
        validate_labels (bool): Check every training label is in
            ``[0, num_classes)`` before any loss and raise naming the
            sample's file (``img_path`` / ``sample_idx``) otherwise.
        init_cfg (dict): Default normal(0, 0.01) ``fc`` weights.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 loss_cls: dict = dict(type='ClsCrossEntropyLoss'),
                 anchor_losses: Optional[Union[dict, List[dict]]] = None,
                 dropout_ratio: float = 0.0,
                 topk: Sequence[int] = (1, ),
                 validate_labels: bool = True,
                 ignore_index: int = -100,
                 init_cfg: Optional[dict] = dict(
                     type='Normal', layer='Linear', std=0.01)) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 2 or in_channels < 1:
            raise ValueError(f'AnchorClsHead needs num_classes >= 2 and '
                             f'in_channels >= 1, got {num_classes}, '
                             f'{in_channels}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.topk = tuple(topk)
        self.validate_labels = validate_labels
        self.dropout = nn.Dropout(dropout_ratio) if dropout_ratio > 0 \
            else nn.Identity()
        self.fc = nn.Linear(in_channels, num_classes)
        self.loss_cls = MODELS.build(loss_cls)
        self.anchor_losses = build_anchor_losses(
            anchor_losses, 'AnchorClsHead', num_classes=num_classes,
            channels=in_channels, ignore_index=ignore_index)

    def forward(self, feat: Tensor) -> Tensor:
        """``N x C`` pooled features -> ``N x K`` logits."""
        if feat.dim() != 2 or feat.shape[1] != self.in_channels:
            raise ValueError(f'AnchorClsHead expects N x {self.in_channels} '
                             f'pooled features, got {tuple(feat.shape)}')
        return self.fc(self.dropout(feat))

    @staticmethod
    def labels_of(data_samples: Sequence[ClsDataSample]) -> Tensor:
        return torch.cat([s.gt_label.reshape(1) for s in data_samples])

    def loss(self, feat: Tensor,
             data_samples: Sequence[ClsDataSample]) -> Dict[str, Tensor]:
        labels = self.labels_of(data_samples).to(feat.device)
        if self.validate_labels:
            check_sample_labels(list(labels), data_samples, self.num_classes,
                                None, 'AnchorClsHead')
        logits = self(feat)
        losses = {self.loss_cls.loss_name: self.loss_cls(logits, labels)}
        with torch.no_grad():
            top = logits.topk(max(self.topk), dim=1).indices
            for k in self.topk:
                hit = (top[:, :k] == labels[:, None]).any(1).float().mean()
                losses[f'acc_top{k}'] = hit * 100
        return add_anchor_terms(losses, self.anchor_losses, feat, labels,
                                self.fc, 'AnchorClsHead')

    def predict(self, feat: Tensor,
                data_samples: Optional[Sequence[ClsDataSample]] = None
                ) -> List[ClsDataSample]:
        scores = self(feat).float().softmax(dim=1)
        if data_samples is None:
            data_samples = [ClsDataSample() for _ in range(scores.shape[0])]
        for sample, score in zip(data_samples, scores):
            sample.set_pred_score(score)
        return list(data_samples)
