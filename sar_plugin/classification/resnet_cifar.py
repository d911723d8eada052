"""The CIFAR ResNet of He et al. 2016 (Sec. 4.2) as an MMSeg backbone.

This is the ``resnet32`` of the long-tail literature (LDAM-DRW and its
successors): a 3x3, 16-channel stem, then three stages of ``n`` basic blocks
with 16 / 32 / 64 channels and strides 1 / 2 / 2, so ``depth = 6n + 2``.
ResNet-32 with LDAM's option-A shortcuts has 0.46M parameters, ResNet-20
0.27M.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm
from mmseg.models.backbones.resnet import BasicBlock
from mmseg.registry import MODELS

NUM_STAGES = 3
SHORTCUTS = ('A', 'B')


class PadShortcut(nn.Module):
    """Parameter-free shortcut of option A (He et al. 2016, LDAM-DRW).

    Subsamples the input spatially by ``stride`` and zero-pads its channels
    symmetrically (the extra channel, if the difference is odd, goes last)
    up to ``out_channels``.

    Args:
        in_channels (int): Channels of the input.
        out_channels (int): Channels of the output (``>= in_channels``).
        stride (int): Spatial subsampling step.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError('PadShortcut: out_channels must be >= '
                             f'in_channels, got {out_channels} < '
                             f'{in_channels}')
        self.stride = stride
        self.pad_front = (out_channels - in_channels) // 2
        self.pad_back = out_channels - in_channels - self.pad_front

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Subsample and zero-pad ``x`` (N x C x H x W)."""
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_front, self.pad_back))


@MODELS.register_module()
class ResNetCifar(BaseModule):
    """CIFAR ResNet (He et al. 2016, Sec. 4.2), e.g. LDAM-DRW's ResNet-32.

    Stem: 3x3 conv (``base_channels``) + norm + ReLU at full resolution;
    stage ``i`` (0-based) has ``n = (depth - 2) / 6`` ``BasicBlock`` s with
    ``base_channels * 2**i`` channels and stride 1 / 2 / 2, so on a 32x32
    input the stages give 32x32, 16x16 and 8x8 maps.

    Args:
        depth (int): ``6n + 2`` with ``n >= 1``: 20, 32, 44, 56, 110, ...
        in_channels (int): Channels of the input image.
        base_channels (int): Width of the stem and of stage 0 (16 in the
            paper); stages 1 and 2 have 2x and 4x as many.
        shortcut (str): ``'B'``: a 1x1 conv + norm projection where the shape
            changes (default). ``'A'``: LDAM's parameter-free shortcut,
            spatial subsampling and zero channel padding.
        norm_cfg (dict): Norm layer config for ``mmcv.cnn.build_norm_layer``
            (e.g. ``dict(type='SyncBN')`` on GPUs).
        conv_cfg (dict, optional): Conv layer config for
            ``mmcv.cnn.build_conv_layer``; ``None`` means ``nn.Conv2d``.
        out_indices (Sequence[int] | int): Stages (0, 1, 2) whose outputs
            ``forward`` returns, in increasing order.
        norm_eval (bool): Keep every norm layer in eval mode (frozen running
            statistics) while training.
        frozen_stages (int): ``-1`` freezes nothing, ``0`` the stem, ``k``
            the stem and the first ``k`` stages (stop grad and eval mode).
        init_cfg (dict | list[dict], optional): MMEngine init config; the
            default is Kaiming normal for convs, 1 / 0 for norm layers.
    """

    def __init__(self,
                 depth: int = 32,
                 in_channels: int = 3,
                 base_channels: int = 16,
                 shortcut: str = 'B',
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 conv_cfg: Optional[dict] = None,
                 out_indices: Union[Sequence[int], int] = (2, ),
                 norm_eval: bool = False,
                 frozen_stages: int = -1,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', layer='Conv2d'),
                dict(type='Constant', val=1, bias=0,
                     layer=['_BatchNorm', 'GroupNorm'])
            ]
        super().__init__(init_cfg)
        if (not isinstance(depth, int) or depth < 8 or (depth - 2) % 6):
            raise ValueError('ResNetCifar: depth must be 6n+2 with n >= 1 '
                             f'(e.g. 20, 32, 44, 56, 110), got {depth!r}')
        if shortcut not in SHORTCUTS:
            raise ValueError(f"ResNetCifar: shortcut must be 'A' or 'B', "
                             f'got {shortcut!r}')
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        out_indices = tuple(out_indices)
        if (not out_indices or len(set(out_indices)) != len(out_indices)
                or any(not isinstance(i, int) or not 0 <= i < NUM_STAGES
                       for i in out_indices)):
            raise ValueError('ResNetCifar: out_indices must be distinct '
                             f'stage indices in 0..{NUM_STAGES - 1}, got '
                             f'{out_indices!r}')
        if (not isinstance(frozen_stages, int)
                or not -1 <= frozen_stages <= NUM_STAGES):
            raise ValueError('ResNetCifar: frozen_stages must be in '
                             f'-1..{NUM_STAGES}, got {frozen_stages!r}')

        self.depth = depth
        self.num_blocks = (depth - 2) // 6
        self.shortcut = shortcut
        self.norm_cfg = norm_cfg
        self.conv_cfg = conv_cfg
        self.out_indices = tuple(sorted(out_indices))
        self.norm_eval = norm_eval
        self.frozen_stages = frozen_stages
        self.stage_channels = tuple(base_channels * 2**i
                                    for i in range(NUM_STAGES))
        self.out_channels = self.stage_channels[self.out_indices[-1]]

        self.conv1 = build_conv_layer(
            conv_cfg, in_channels, base_channels, 3, padding=1, bias=False)
        self.norm1_name, norm1 = build_norm_layer(
            norm_cfg, base_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.relu = nn.ReLU(inplace=True)

        self.res_layers = []
        channels = base_channels
        for i, planes in enumerate(self.stage_channels):
            layer = self._make_stage(channels, planes, 1 if i == 0 else 2)
            name = f'layer{i + 1}'
            self.add_module(name, layer)
            self.res_layers.append(name)
            channels = planes

        self._freeze_stages()

    @property
    def norm1(self) -> nn.Module:
        """nn.Module: The stem's norm layer."""
        return getattr(self, self.norm1_name)

    def _make_shortcut(self, in_channels: int, out_channels: int,
                       stride: int) -> Optional[nn.Module]:
        """The shortcut of a block, ``None`` (identity) if shapes match."""
        if stride == 1 and in_channels == out_channels:
            return None
        if self.shortcut == 'A':
            return PadShortcut(in_channels, out_channels, stride)
        return nn.Sequential(
            build_conv_layer(
                self.conv_cfg,
                in_channels,
                out_channels,
                1,
                stride=stride,
                bias=False),
            build_norm_layer(self.norm_cfg, out_channels)[1])

    def _make_stage(self, in_channels: int, planes: int,
                    stride: int) -> nn.Sequential:
        """``num_blocks`` basic blocks, the first one with ``stride``."""
        blocks = []
        for j in range(self.num_blocks):
            blocks.append(
                BasicBlock(
                    in_channels,
                    planes,
                    stride=stride if j == 0 else 1,
                    downsample=self._make_shortcut(
                        in_channels, planes, stride if j == 0 else 1),
                    conv_cfg=self.conv_cfg,
                    norm_cfg=self.norm_cfg))
            in_channels = planes
        return nn.Sequential(*blocks)

    def _freeze_stages(self) -> None:
        """Stop grad and set eval mode for the stem and the first
        ``frozen_stages`` stages."""
        modules = []
        if self.frozen_stages >= 0:
            modules += [self.conv1, self.norm1]
        modules += [
            getattr(self, name)
            for name in self.res_layers[:max(self.frozen_stages, 0)]
        ]
        for module in modules:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the outputs of the stages in ``out_indices``.

        Args:
            x (Tensor): Images, N x in_channels x H x W.

        Returns:
            tuple[Tensor]: Stage ``i`` output is N x ``stage_channels[i]`` x
            H / 2**i x W / 2**i (rounded up).
        """
        x = self.relu(self.norm1(self.conv1(x)))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'ResNetCifar':
        """Set train mode, keeping frozen stages (and, with ``norm_eval``,
        all norm layers) in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, (_BatchNorm, nn.GroupNorm)):
                    m.eval()
        return self
