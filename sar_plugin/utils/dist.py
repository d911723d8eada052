"""Collective helpers that degrade to no-ops outside distributed training
(torch-only; they live with the losses, :mod:`sar_plugin.losses.dist`)."""
from ..losses.dist import (all_ranks_true, all_reduce_mean, all_reduce_sum,
                           is_distributed)

__all__ = ['all_ranks_true', 'all_reduce_mean', 'all_reduce_sum',
           'is_distributed']
