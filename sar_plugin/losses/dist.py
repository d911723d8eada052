"""Collectives of the losses' state updates, with torch alone.

Loss state (EMA anchors, centres, gates) must be identical on every rank,
and MMEngine wraps models with ``broadcast_buffers=False``, so the losses
all-reduce what they write instead of relying on DDP. Outside a process
group of more than one rank every helper returns its input. The tensors
stay on their device (the losses' device: CUDA under NCCL); no host sync.
"""
import torch
import torch.distributed as torch_dist
from torch import Tensor


def is_distributed() -> bool:
    """Whether a process group with more than one rank is running."""
    return (torch_dist.is_available() and torch_dist.is_initialized()
            and torch_dist.get_world_size() > 1)


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum of ``tensor`` over all ranks (returned; input unchanged)."""
    if not is_distributed():
        return tensor
    out = tensor.detach().clone()
    torch_dist.all_reduce(out, op=torch_dist.ReduceOp.SUM)
    return out


def all_reduce_mean(tensor: Tensor) -> Tensor:
    """Mean of ``tensor`` over all ranks (returned; input unchanged)."""
    if not is_distributed():
        return tensor
    return all_reduce_sum(tensor) / torch_dist.get_world_size()


def all_ranks_true(flag: Tensor) -> Tensor:
    """Logical AND of a boolean tensor over all ranks."""
    if not is_distributed():
        return flag
    out = flag.to(torch.int32)
    torch_dist.all_reduce(out, op=torch_dist.ReduceOp.MIN)
    return out.bool()
