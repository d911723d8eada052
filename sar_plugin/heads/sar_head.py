"""SARHead: add anchor losses to any MMSeg decode head without touching it."""
import inspect
from typing import Any, Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from torch import Tensor, nn

from ..losses.builder import add_anchor_terms, build_anchor_losses
from ..utils.labels import check_sample_labels
from ..utils.state_dict import wrap_plain_entries

ConfigType = Union[dict, Any]


class FeatureCapture:
    """Stands in for a head's ``cls_seg`` and records the feature it gets.

    Installed as an instance attribute of the wrapped head, it calls the
    head's own ``cls_seg`` (dropout, then ``conv_seg``) unchanged and, while
    :attr:`active`, keeps the input feature, i.e. the feature *before*
    dropout. It is a plain object holding the bound method, so ``deepcopy``
    (EMA hooks) and ``pickle`` of the model keep working.
    """

    def __init__(self, cls_seg) -> None:
        self.cls_seg = cls_seg
        self.active = False
        self.feats: List[Tensor] = []

    def __call__(self, feat: Tensor, *args, **kwargs) -> Tensor:
        if self.active:
            self.feats.append(feat)
        return self.cls_seg(feat, *args, **kwargs)

    def pop(self) -> List[Tensor]:
        feats, self.feats = self.feats, []
        return feats


@MODELS.register_module()
class SARHead(BaseModule):
    """Wrap any MMSeg decode head and add anchor losses to its training loss.

    Example::

        decode_head=dict(
            type='SARHead',
            head=dict(type='FCNHead', in_channels=2048, channels=512,
                      num_classes=19),
            anchor_losses=[dict(type='SARLoss', loss_weight=1.0)])

    During :meth:`loss`, the wrapper records the feature the head passes to
    ``cls_seg`` (``N x C x h x w``), resizes the labels to ``h x w``
    (nearest) and calls every anchor loss as
    ``loss(feat, label, classifier=head.conv_seg)``; their terms are added to
    the head's own (``loss_ce``, ``acc_seg``... unchanged). :meth:`predict`
    and :meth:`forward` are the head's own: nothing runs at test time.

    Anything else ``EncoderDecoder`` / ``CascadeEncoderDecoder`` read
    (``num_classes``, ``out_channels``, ``align_corners``, ``threshold``,
    ``ignore_index``, ``loss_decode``...) is forwarded to the head.

    State-dict layout: the head's parameters live under ``head.`` and the
    losses' under ``anchor_losses.<i>.``; a checkpoint of the plain model
    (keys ``decode_head.conv_seg.weight``...) is remapped on load to
    ``decode_head.head.conv_seg.weight``..., so ``load_from`` a released
    MMSeg baseline reports only the anchor-loss entries as missing.

    Args:
        head (dict): Config of any registered decode head that classifies
            with ``cls_seg`` and a linear ``conv_seg``.
        anchor_losses (dict | list[dict], optional): Anchor loss configs.
            ``num_classes`` and ``channels`` are filled from the head when
            the loss accepts them and the config omits them;
            ``ignore_index`` and ``norm_cfg`` (e.g. ``SARLoss``'s projector
            norm) likewise, so a loss config may name only its ``type``.
        validate_labels (bool): Before any loss, check that every training
            label is in ``[0, num_classes)`` or the head's ``ignore_index``
            and raise naming the sample's files otherwise (one host sync
            per step). Without it a bad label fails inside the head's
            cross-entropy without a file name (or as a device assert).
        init_cfg (dict, optional): Init config of the wrapper itself.
    """

    def __init__(self,
                 head: ConfigType,
                 anchor_losses: Optional[Union[ConfigType,
                                               List[ConfigType]]] = None,
                 validate_labels: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.validate_labels = validate_labels
        self.head = MODELS.build(head)
        head_type = type(self.head).__name__
        if not callable(getattr(self.head, 'cls_seg', None)) or \
                not isinstance(getattr(self.head, 'conv_seg', None), nn.Module):
            raise TypeError(
                f'SARHead cannot wrap {head_type}: it has no `cls_seg` method '
                'with a `conv_seg` classifier, so there is no pre-classifier '
                'feature to regularise')
        self._capture = FeatureCapture(self.head.cls_seg)
        self.head.cls_seg = self._capture

        self.anchor_losses = build_anchor_losses(
            anchor_losses, 'SARHead',
            num_classes=self.head.num_classes,
            channels=getattr(self.head, 'channels', None),
            ignore_index=getattr(self.head, 'ignore_index', 255),
            norm_cfg=getattr(self.head, 'norm_cfg', None))

    # ----------------------------------------------------- head interface
    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            head = self.__dict__.get('_modules', {}).get('head')
            if head is None:
                raise
            return getattr(head, name)

    def forward(self, *args, **kwargs) -> Tensor:
        """The head's own forward (``EncoderDecoder._forward``)."""
        return self.head(*args, **kwargs)

    def predict(self, *args, **kwargs) -> Tensor:
        """The head's own ``predict``: no extra work at test time."""
        return self.head.predict(*args, **kwargs)

    def loss(self, *args, **kwargs) -> Dict[str, Tensor]:
        """The head's loss plus the anchor losses.

        Takes exactly the arguments of the wrapped head's ``loss``:
        ``(inputs, batch_data_samples, train_cfg)`` for a decode head,
        ``(inputs, prev_output, batch_data_samples, train_cfg)`` for a
        cascade head such as ``OCRHead``.
        """
        bound = inspect.signature(self.head.loss).bind(*args, **kwargs)
        data_samples = bound.arguments['batch_data_samples']
        if self.validate_labels:
            check_sample_labels(
                [s.gt_sem_seg.data for s in data_samples], data_samples,
                self.head.num_classes, getattr(self.head, 'ignore_index',
                                               None), 'SARHead')
        self._capture.pop()
        self._capture.active = bool(self.anchor_losses)
        try:
            losses = self.head.loss(*args, **kwargs)
        finally:
            self._capture.active = False
        if not self.anchor_losses:
            return losses
        feats = self._capture.pop()
        head_type = type(self.head).__name__
        if not feats:
            raise RuntimeError(
                f'SARHead: {head_type} never called cls_seg() during its '
                'forward pass, so there is no pre-classifier feature for the '
                'anchor losses; this head cannot be wrapped')
        feat = feats[-1]
        if feat.dim() != 4:
            raise RuntimeError(
                f'SARHead: {head_type} passed a {feat.dim()}-D tensor to '
                'cls_seg(); anchor losses need N x C x H x W features')
        label = self.resize_label(data_samples, feat.shape[-2:])
        add_anchor_terms(losses, self.anchor_losses, feat, label,
                         self.head.conv_seg, 'SARHead')
        return losses

    @staticmethod
    def resize_label(data_samples: list, size) -> Tensor:
        """Stack ``gt_sem_seg`` and nearest-resize it to ``size``.

        Returns:
            Tensor: ``N x h x w`` long labels.
        """
        label = torch.stack([s.gt_sem_seg.data for s in data_samples])
        if tuple(label.shape[-2:]) != tuple(size):
            label = F.interpolate(label.float(), size=tuple(size),
                                  mode='nearest')
        return label[:, 0].long()

    # ------------------------------------------------------ checkpoints
    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """Accept checkpoints of the plain (unwrapped) head.

        Keys ``{prefix}<name>`` that are not ``{prefix}anchor_losses.*`` are
        moved to ``{prefix}head.<name>`` when the checkpoint has no
        ``{prefix}head.*`` key at all
        (:func:`~sar_plugin.utils.state_dict.wrap_plain_entries`).
        """
        if wrap_plain_entries(state_dict, prefix):
            print_log(f'{prefix}: loading a plain {type(self.head).__name__} '
                      'checkpoint into SARHead (its entries moved under '
                      f'{prefix}head.); the anchor losses keep their '
                      'initial state', logger='current')
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)
