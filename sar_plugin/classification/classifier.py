"""ImageClassifier: backbone -> global average pooling -> head, as an
MMEngine model in the MMSeg registry (no mmpretrain needed)."""
from typing import Dict, List, Optional, Sequence, Union

import torch.nn.functional as F
from mmengine.model import BaseModel
from mmseg.registry import MODELS
from torch import Tensor

from ..structures import ClsDataSample


@MODELS.register_module()
class ImageClassifier(BaseModel):
    """Image classifier with ``loss`` / ``predict`` / ``tensor`` modes.

    Args:
        backbone (dict): Any MMSeg backbone (``ResNetV1c``, ``MixVisionTransformer``...)
            or ``ResNetCifar``; the last of its outputs is pooled.
        head (dict): ``AnchorClsHead`` config; ``in_channels`` is filled from
            ``backbone.out_channels`` when omitted and available.
        data_preprocessor (dict, optional): Default MMEngine's
            ``ImgDataPreprocessor`` (set ``mean``/``std``/``bgr_to_rgb``).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='ImgDataPreprocessor')
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        head = dict(head)
        if head.get('in_channels') is None:
            channels = getattr(self.backbone, 'out_channels', None)
            if channels is None:
                raise ValueError(f'ImageClassifier: set head.in_channels '
                                 f'(the {type(self.backbone).__name__} '
                                 'backbone does not say its output channels)')
            head['in_channels'] = channels
        self.head = MODELS.build(head)

    def extract_feat(self, inputs: Tensor) -> Tensor:
        """``N x C`` globally average-pooled last backbone output."""
        x = self.backbone(inputs)
        if isinstance(x, (list, tuple)):
            x = x[-1]
        if x.dim() == 4:
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return x

    def forward(self,
                inputs: Tensor,
                data_samples: Optional[Sequence[ClsDataSample]] = None,
                mode: str = 'tensor'
                ) -> Union[Dict[str, Tensor], List[ClsDataSample], Tensor]:
        if mode == 'loss':
            return self.head.loss(self.extract_feat(inputs), data_samples)
        if mode == 'predict':
            return self.head.predict(self.extract_feat(inputs), data_samples)
        if mode == 'tensor':
            return self.head(self.extract_feat(inputs))
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got "
                         f'{mode!r}')
