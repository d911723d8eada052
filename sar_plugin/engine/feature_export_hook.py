"""Hand the classifier's input feature to the evaluation metrics."""
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS
from torch import Tensor, nn


def find_classifier(model: nn.Module, path: Optional[str] = None) -> nn.Module:
    """The layer whose input is the pre-classifier feature.

    Args:
        model (nn.Module): A segmentor or classifier (wrappers unwrapped).
        path (str, optional): Dotted attribute path from the model, list
            indices as numbers (``'decode_head.1.conv_seg'``). ``None``
            finds it: the decode head's ``conv_seg`` (the last head of a
            cascade; through a :class:`~sar_plugin.heads.SARHead`), or a
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
                    f'FeatureExportHook: classifier={path!r} does not name a '
                    f'module of {type(model).__name__} (failed at {part!r})'
                ) from err
        return module
    head = getattr(model, 'decode_head', None)
    if isinstance(head, nn.ModuleList):
        head = head[-1]
    if head is not None:
        inner = getattr(head, 'head', None)  # SARHead
        for candidate in (inner, head):
            if isinstance(getattr(candidate, 'conv_seg', None), nn.Module):
                return candidate.conv_seg
    head = getattr(model, 'head', None)
    if isinstance(getattr(head, 'fc', None), nn.Module):
        return head.fc
    raise AttributeError(
        f'FeatureExportHook: no classifier found in {type(model).__name__} '
        '(looked for decode_head.conv_seg and head.fc); set `classifier` to '
        'its dotted path')


def _crop_and_unflip(feat: Tensor, meta: dict) -> Tensor:
    """Undo the test-time padding and flip of one ``C x h x w`` feature, as
    ``BaseSegmentor.postprocess_result`` does for the logits."""
    h, w = feat.shape[-2:]
    pad = meta.get('img_padding_size', meta.get('padding_size'))
    batch_shape = meta.get('batch_input_shape')
    if pad is not None and batch_shape is not None and any(pad):
        left, right, top, bottom = pad
        sy, sx = h / batch_shape[0], w / batch_shape[1]
        feat = feat[:, round(top * sy):h - round(bottom * sy),
                    round(left * sx):w - round(right * sx)]
    if meta.get('flip'):
        dim = 2 if meta.get('flip_direction') == 'horizontal' else 1
        feat = feat.flip(dims=(dim, ))
    return feat


@HOOKS.register_module()
class FeatureExportHook(Hook):
    """During validation and test, attach the pre-classifier feature of every
    image to its predicted data sample, for
    :class:`~sar_plugin.evaluation.FeatureCompactnessMetric`.

    A forward pre-hook on the classifier (``conv_seg``, or ``fc`` of a
    classification head; see :func:`find_classifier`) records its input;
    a forward hook on the model attaches it as ``field`` to each output
    sample: a ``C x h x w`` tensor for segmentation (padding removed and
    test-time flip undone, as MMSeg does for the logits) or a ``C`` vector
    for classification. At test time the head's dropout is off, so this is
    the feature the anchor losses see in training. Works the same for plain
    heads and :class:`~sar_plugin.heads.SARHead`, so baselines get the
    same diagnostics.

    Only whole-image inference is supported: when the classifier runs more
    than once per forward (sliding windows, test-time augmentation) the
    features are not attached and a warning is printed once.

    Config::

        custom_hooks = [dict(type='FeatureExportHook')]

    Args:
        classifier (str, optional): Dotted path of the classifier layer.
        field (str): Data-sample field written (the metric's
            ``feature_field``). Defaults to ``'seg_features'``.
        to_cpu (bool): Move the features to the CPU. Defaults to True.
    """
    priority = 'NORMAL'

    def __init__(self, classifier: Optional[str] = None,
                 field: str = 'seg_features', to_cpu: bool = True) -> None:
        self.classifier = classifier
        self.field = field
        self.to_cpu = to_cpu
        self._records: List[Tensor] = []
        self._handles: list = []
        self._warned = False

    # --- installing -------------------------------------------------------
    def _install(self, runner) -> None:
        self._remove()
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        classifier = find_classifier(model, self.classifier)
        self._handles = [
            classifier.register_forward_pre_hook(self._record),
            model.register_forward_pre_hook(self._reset),
            model.register_forward_hook(self._attach),
        ]

    def _remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._records = []

    def before_val_epoch(self, runner) -> None:
        self._install(runner)

    def before_test_epoch(self, runner) -> None:
        self._install(runner)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._remove()

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._remove()

    # --- the torch hooks --------------------------------------------------
    def _record(self, module: nn.Module, args: tuple) -> None:
        self._records.append(args[0].detach())

    def _reset(self, module: nn.Module, args: tuple) -> None:
        self._records = []

    def _attach(self, module: nn.Module, args: tuple, output) -> None:
        records, self._records = self._records, []
        if not isinstance(output, (list, tuple)) or not records:
            return
        if len(records) != 1 or records[0].shape[0] != len(output):
            if not self._warned:
                print_log(
                    f'FeatureExportHook: the classifier ran {len(records)} '
                    f'times for {len(output)} images (sliding-window or '
                    'test-time-augmented inference); features are only '
                    'exported for whole-image inference', logger='current',
                    level=30)
                self._warned = True
            return
        feats = records[0]
        for sample, feat in zip(output, feats):
            if feat.dim() == 3:
                feat = _crop_and_unflip(feat, sample.metainfo)
            if self.to_cpu:
                feat = feat.cpu()
            sample.set_field(feat.float(), self.field)

