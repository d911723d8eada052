"""The classifier's input feature of every image, attached to its predicted
data sample (the feature part of :class:`~.LongTailEvalHook`)."""
from typing import List, Optional, Sequence, Tuple

from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch import Tensor, nn


def find_classifier(model: nn.Module, path: Optional[str] = None) -> nn.Module:
    """The layer whose input is the pre-classifier feature.

    Args:
        model (nn.Module): A segmentor or classifier (wrappers unwrapped).
        path (str, optional): Dotted attribute path from the model, list
            indices as numbers (``'decode_head.1.conv_seg'``). ``None``
            finds it: the decode head's ``conv_seg`` (the last head of a
            cascade, with or without anchor losses), or a
            classification head's ``fc``.

    Raises:
        AttributeError: When the path does not exist or nothing is found.
    """
    if is_model_wrapper(model):
        model = model.module
    if path is not None:
        module = model
        for part in path.split('.'):
            try:
                module = module[int(part)] if part.isdigit() else \
                    getattr(module, part)
            except (AttributeError, IndexError, TypeError) as err:
                raise AttributeError(
                    f'LongTailEvalHook: classifier={path!r} does not name a '
                    f'module of {type(model).__name__} (failed at {part!r})'
                ) from err
        return module
    head = getattr(model, 'decode_head', None)
    if isinstance(head, nn.ModuleList):
        head = head[-1]
    if head is not None and isinstance(getattr(head, 'conv_seg', None),
                                       nn.Module):
        return head.conv_seg
    head = getattr(model, 'head', None)
    if isinstance(getattr(head, 'fc', None), nn.Module):
        return head.fc
    raise AttributeError(
        f'LongTailEvalHook: no classifier found in {type(model).__name__} '
        '(looked for decode_head.conv_seg and head.fc); set `classifier` to '
        'its dotted path')


def slide_windows(image: Tuple[int, int], crop: Sequence[int],
                  stride: Sequence[int]) -> List[Tuple[int, int, int, int]]:
    """The ``(y1, y2, x1, x2)`` windows of MMSeg's ``slide_inference`` over
    an ``image = (h, w)`` input, in its order (rows, then columns)."""
    (h_img, w_img), (h_crop, w_crop) = image, crop
    h_stride, w_stride = stride
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    windows = []
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y2 = min(h_idx * h_stride + h_crop, h_img)
            x2 = min(w_idx * w_stride + w_crop, w_img)
            windows.append((max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0), x2))
    return windows


def stitch_windows(feats: Sequence[Tensor],
                   windows: Sequence[Tuple[int, int, int, int]],
                   image: Tuple[int, int]) -> Optional[Tensor]:
    """Average the ``B x C x h x w`` features of the sliding windows into one
    feature map of the whole input, as MMSeg averages the windows' logits,
    at the features' own resolution (a window at ``y1`` starts at
    ``round(y1 * h / crop_h)``). ``None`` when the windows leave a gap."""
    y1, y2, x1, x2 = windows[0]
    scale_y = feats[0].shape[-2] / (y2 - y1)
    scale_x = feats[0].shape[-1] / (x2 - x1)
    height, width = round(image[0] * scale_y), round(image[1] * scale_x)
    total = feats[0].new_zeros(feats[0].shape[:2] + (height, width))
    count = feats[0].new_zeros((height, width))
    for feat, (y1, _, x1, _) in zip(feats, windows):
        top, left = round(y1 * scale_y), round(x1 * scale_x)
        h = min(feat.shape[-2], height - top)
        w = min(feat.shape[-1], width - left)
        total[..., top:top + h, left:left + w] += feat[..., :h, :w]
        count[top:top + h, left:left + w] += 1
    if bool((count == 0).any()):
        return None
    return total / count


def _crop_and_unflip(feat: Tensor, meta: dict,
                     batch_shape: Optional[Sequence[int]] = None) -> Tensor:
    """Undo the test-time padding and flip of one ``C x h x w`` feature, as
    ``BaseSegmentor.postprocess_result`` does for the logits.
    ``batch_shape`` (the model input's ``(H, W)``) defaults to the meta's
    ``batch_input_shape``."""
    h, w = feat.shape[-2:]
    pad = meta.get('img_padding_size', meta.get('padding_size'))
    batch_shape = batch_shape or meta.get('batch_input_shape')
    if pad is not None and batch_shape is not None and any(pad):
        left, right, top, bottom = pad
        sy, sx = h / batch_shape[0], w / batch_shape[1]
        feat = feat[:, round(top * sy):h - round(bottom * sy),
                    round(left * sx):w - round(right * sx)]
    if meta.get('flip'):
        dim = 2 if meta.get('flip_direction') == 'horizontal' else 1
        feat = feat.flip(dims=(dim, ))
    return feat


class FeatureExporter:
    """Attach the pre-classifier feature of every image to its predicted
    data sample, for :class:`~sar_plugin.evaluation.FeatureCompactnessMetric`.

    :meth:`install` puts a forward pre-hook on the classifier (``conv_seg``,
    or ``fc`` of a classification head; see :func:`find_classifier`) that
    records its input, and a forward hook on the model that attaches it as
    ``field`` to each output sample: a ``C x h x w`` tensor for segmentation
    (padding removed and test-time flip undone, as MMSeg does for the
    logits) or a ``C`` vector for classification. At test time the head's
    dropout is off, so this is the feature the anchor losses see in
    training. Works the same for plain heads and
    :class:`~sar_plugin.heads.SARHead`, so baselines get the same
    diagnostics. :meth:`remove` takes the torch hooks off again.

    Sliding-window inference (``test_cfg=dict(mode='slide', ...)``, the
    Cityscapes/ADE20K default) runs the classifier once per window; the
    windows' features are averaged into one map of the whole input at the
    feature resolution (:func:`stitch_windows`), as MMSeg averages the
    windows' logits. Any other repeated call (test-time augmentation) is
    not exported, with a warning printed once.

    Args:
        classifier (str, optional): Dotted path of the classifier layer.
        field (str): Data-sample field written (the metric's
            ``feature_field``). Defaults to ``'seg_features'``.
        to_cpu (bool): Move the features to the CPU. Defaults to True.
    """

    def __init__(self, classifier: Optional[str] = None,
                 field: str = 'seg_features', to_cpu: bool = True) -> None:
        self.classifier = classifier
        self.field = field
        self.to_cpu = to_cpu
        self._records: List[Tensor] = []
        self._input_shape: Optional[Tuple[int, int]] = None
        self._handles: list = []
        self._warned = False

    # --- installing -------------------------------------------------------
    def install(self, model: nn.Module) -> None:
        """Put the torch hooks on ``model`` (a wrapper is unwrapped)."""
        self.remove()
        model = model.module if is_model_wrapper(model) else model
        classifier = find_classifier(model, self.classifier)
        self._handles = [
            classifier.register_forward_pre_hook(self._record),
            model.register_forward_pre_hook(self._reset, with_kwargs=True),
            model.register_forward_hook(self._attach),
        ]

    def remove(self) -> None:
        """Take the torch hooks off (nothing is left installed)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._records = []

    # --- the torch hooks --------------------------------------------------
    def _record(self, module: nn.Module, args: tuple) -> None:
        self._records.append(args[0].detach())

    def _reset(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self._records = []
        inputs = kwargs.get('inputs', args[0] if args else None)
        self._input_shape = tuple(inputs.shape[-2:]) \
            if isinstance(inputs, Tensor) and inputs.dim() == 4 else None

    def _warn(self, message: str) -> None:
        if not self._warned:
            print_log(f'LongTailEvalHook: {message}; features are not '
                      'exported', logger='current', level=30)
            self._warned = True

    def _features(self, module: nn.Module, records: List[Tensor],
                  num: int) -> Optional[Tensor]:
        """The ``num`` images' features from the classifier's inputs."""
        if any(r.shape[0] != num for r in records):
            self._warn(f'the classifier saw batches of '
                       f'{[r.shape[0] for r in records]} for {num} images')
            return None
        if len(records) == 1:
            return records[0]
        test_cfg = getattr(module, 'test_cfg', None) or {}
        if test_cfg.get('mode') == 'slide' and self._input_shape and \
                records[0].dim() == 4:
            windows = slide_windows(self._input_shape, test_cfg['crop_size'],
                                    test_cfg['stride'])
            if len(windows) == len(records):
                feats = stitch_windows(records, windows, self._input_shape)
                if feats is not None:
                    return feats
                self._warn('the sliding windows leave gaps at the feature '
                           'resolution')
                return None
        self._warn(f'the classifier ran {len(records)} times for one batch '
                   '(test-time augmentation, or windows that are not '
                   "test_cfg's slide windows)")
        return None

    def _attach(self, module: nn.Module, args: tuple, output) -> None:
        records, self._records = self._records, []
        if not isinstance(output, (list, tuple)) or not records:
            return
        feats = self._features(module, records, len(output))
        if feats is None:
            return
        slide = len(records) > 1
        for sample, feat in zip(output, feats):
            if feat.dim() == 3:
                feat = _crop_and_unflip(
                    feat, sample.metainfo,
                    self._input_shape if slide else None)
            if self.to_cpu:
                feat = feat.cpu()
            sample.set_field(feat.float(), self.field)

