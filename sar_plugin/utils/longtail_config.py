"""Give any segmentation config the long-tail evaluation, without editing
it: what ``tools/test.py --longtail`` and ``tools/longtail_eval.py`` do."""
import copy
from typing import List, Optional, Union

from mmengine.config import Config

from .runtime import add_hooks

#: the hooks the long-tail metrics need, in order
LONGTAIL_HOOKS = ('LongTailEvalHook', )
_IOU_TYPES = ('IoUMetric', 'LongTailIoUMetric')


def _metric_list(evaluator) -> List[dict]:
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator = evaluator['metrics']
    if isinstance(evaluator, dict):
        return [evaluator]
    return list(evaluator or [])


def _type_name(metric: dict) -> str:
    kind = metric.get('type')
    return kind if isinstance(kind, str) else getattr(kind, '__name__', '')


def add_longtail_evaluation(cfg: Config,
                            class_frequency: Optional[Union[str,
                                                            list]] = None,
                            cache_dir: Optional[str] = None,
                            splits=('val', 'test')) -> Config:
    """Turn the IoU metric of ``<split>_evaluator`` into
    :class:`~sar_plugin.evaluation.LongTailIoUMetric` (its own arguments
    kept), add :class:`~sar_plugin.evaluation.FeatureCompactnessMetric`
    and the hooks they need (:data:`LONGTAIL_HOOKS`), in place.

    Args:
        cfg (Config): A segmentation config (MMSeg's or ours).
        class_frequency: The buckets' source for both metrics: a file of
            ``tools/analysis/class_frequency.py``, counts, or ``None``
            to keep a long-tail metric's own setting and give a plain one
            ``'auto'`` (the training split counted once).
        cache_dir (str, optional): Where ``LongTailEvalHook`` keeps the
            count (default: the run's work dir).
        splits: The evaluators changed (those the config has).

    Raises:
        ValueError: An evaluator without an IoU metric, naming it.
    """
    for split in splits:
        key = f'{split}_evaluator'
        if cfg.get(key) is None:
            continue
        metrics = [copy.deepcopy(dict(m)) for m in _metric_list(cfg[key])]
        ious = [m for m in metrics if _type_name(m) in _IOU_TYPES]
        if not ious:
            raise ValueError(
                f'{key} has no IoUMetric to turn into LongTailIoUMetric: '
                f'{cfg[key]}')
        for metric in ious:
            if _type_name(metric) == 'IoUMetric':
                metric['type'] = 'LongTailIoUMetric'
                metric.setdefault('class_frequency', 'auto')
            if class_frequency is not None:
                metric['class_frequency'] = class_frequency
        if not any(_type_name(m) == 'FeatureCompactnessMetric'
                   for m in metrics):
            metrics.append(dict(
                type='FeatureCompactnessMetric', per_class=256,
                per_class_keys=False,
                class_frequency=ious[0].get('class_frequency', 'auto')))
        elif class_frequency is not None:
            for metric in metrics:
                if _type_name(metric) == 'FeatureCompactnessMetric':
                    metric['class_frequency'] = class_frequency
        cfg[key] = metrics
    add_hooks(cfg, LONGTAIL_HOOKS)
    if cache_dir is not None:
        for hook in cfg.custom_hooks:
            if isinstance(hook, dict) and \
                    hook.get('type') == 'LongTailEvalHook':
                hook['cache_dir'] = cache_dir
    return cfg
