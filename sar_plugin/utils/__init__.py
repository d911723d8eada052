from .checkpoint import enable_safe_loading, safe_loading
from .dist import all_ranks_true, all_reduce_mean, all_reduce_sum, is_distributed
from .runtime import (CPUAutocastOptimWrapper, destroy_process_group,
                      prepare_config)
from .sync_bn import sync_bn_to_bn

__all__ = [
    'enable_safe_loading', 'safe_loading', 'all_ranks_true', 'all_reduce_mean',
    'all_reduce_sum', 'is_distributed', 'sync_bn_to_bn',
    'CPUAutocastOptimWrapper', 'prepare_config', 'destroy_process_group'
]
