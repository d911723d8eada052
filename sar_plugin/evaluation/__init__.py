from .buckets import (BUCKET_RULES, bucket_indices, bucket_mean,
                      buckets_from_file, load_class_frequency, make_buckets)
from .feature_compactness import (ClassBalancedReservoir,
                                  FeatureCompactnessMetric, compactness_stats,
                                  silhouette_samples)
from .longtail_iou import LongTailIoUMetric

__all__ = [
    'LongTailIoUMetric', 'FeatureCompactnessMetric', 'ClassBalancedReservoir',
    'compactness_stats', 'silhouette_samples', 'make_buckets',
    'bucket_indices', 'bucket_mean', 'buckets_from_file',
    'load_class_frequency', 'BUCKET_RULES'
]
