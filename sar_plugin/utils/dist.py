"""Collective helpers that degrade to no-ops outside distributed training.

Loss state (EMA anchors, centres, gates) must be identical on every rank,
and MMEngine wraps models with ``broadcast_buffers=False``, so the losses
all-reduce what they write into their buffers instead of relying on DDP.
"""
import torch
from mmengine import dist
from torch import Tensor


def is_distributed() -> bool:
    """Whether a process group with more than one rank is running."""
    return dist.is_distributed() and dist.get_world_size() > 1


def _all_reduce(tensor: Tensor, op: str) -> Tensor:
    if not is_distributed():
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=op)
    return out


def all_reduce_mean(tensor: Tensor) -> Tensor:
    """Mean of ``tensor`` over all ranks (returned; input unchanged)."""
    return _all_reduce(tensor, 'mean')


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum of ``tensor`` over all ranks (returned; input unchanged)."""
    return _all_reduce(tensor, 'sum')


def all_ranks_true(flag: Tensor) -> Tensor:
    """Logical AND of a boolean tensor over all ranks, without a host sync."""
    if not is_distributed():
        return flag
    out = flag.to(torch.int32)
    dist.all_reduce(out, op='min')
    return out.bool()
