from .buckets import (BUCKET_RULES, bucket_indices, bucket_mean, describe_rule,
                      buckets_from_file, load_class_frequency, make_buckets)
from .feature_compactness import (ClassBalancedReservoir,
                                  FeatureCompactnessMetric, compactness_stats,
                                  silhouette_samples)
from .longtail_accuracy import LongTailAccuracy
from .longtail_iou import LongTailIoUMetric
from .records import RecordWriter, current_iter, run_log_dir

__all__ = [
    'LongTailIoUMetric', 'LongTailAccuracy', 'FeatureCompactnessMetric', 'ClassBalancedReservoir',
    'compactness_stats', 'silhouette_samples', 'make_buckets',
    'bucket_indices', 'bucket_mean', 'buckets_from_file',
    'load_class_frequency', 'BUCKET_RULES', 'RecordWriter', 'current_iter',
    'describe_rule',
    'run_log_dir'
]
