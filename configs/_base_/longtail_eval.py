# Long-tail evaluation for configs that inherit MMSeg's: per-class and
# head/body/tail mIoU (LongTailIoUMetric) plus the feature metric
# (FeatureCompactnessMetric on the classifier's input, which
# LongTailEvalHook exports, sliding windows included). The class
# frequencies are the training split's, counted once on the first
# evaluation and cached in the work dir (LongTailEvalHook,
# class_frequency='auto'); give a file of tools/analysis/class_frequency.py
# instead when you have one. MMEngine forbids two bases defining one key, so
# a config takes these with
#     val_evaluator = {{_base_.longtail_evaluator}}
#     test_evaluator = val_evaluator
# The hook they need (LongTailEvalHook: class frequency, features, record
# dir) comes with ./sar_runtime.py.
longtail_evaluator = [
    dict(type='LongTailIoUMetric', iou_metrics=['mIoU'],
         class_frequency='auto'),
    dict(type='FeatureCompactnessMetric', per_class=256,
         per_class_keys=False, class_frequency='auto'),
]
