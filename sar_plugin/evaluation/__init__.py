from .buckets import (BUCKET_RULES, ClassBuckets, bucket_indices, bucket_mean,
                      describe_rule, load_class_frequency, make_buckets,
                      nanmean)
from .compactness import compactness_stats, silhouette_samples
from .feature_compactness import FeatureCompactnessMetric
from .longtail_accuracy import LongTailAccuracy
from .longtail_base import LongTailMetricMixin
from .longtail_iou import LongTailIoUMetric
from .records import (FEATURE_SUBDIR, SCORE_SUBDIR, FeatureRecord,
                      RecordWriter, ScoreRecord, current_iter)
from .reservoir import ClassBalancedReservoir

__all__ = [
    'LongTailIoUMetric', 'LongTailAccuracy', 'FeatureCompactnessMetric',
    'LongTailMetricMixin', 'ClassBalancedReservoir', 'compactness_stats',
    'silhouette_samples', 'make_buckets', 'bucket_indices', 'bucket_mean',
    'nanmean', 'ClassBuckets', 'load_class_frequency', 'BUCKET_RULES',
    'describe_rule', 'RecordWriter', 'ScoreRecord', 'FeatureRecord',
    'SCORE_SUBDIR', 'FEATURE_SUBDIR', 'current_iter'
]
