"""What ``tools/train.py`` and ``tools/test.py`` do to a config before the
runner is built, so one config file serves a GPU cluster and a CPU laptop."""
import logging
import os.path as osp
from contextlib import contextmanager
from typing import List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmseg.registry import OPTIM_WRAPPERS

from .checkpoint import enable_safe_loading
from .sync_bn import sync_bn_to_bn


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """Mixed precision on the CPU: forward under ``torch.autocast('cpu')``.

    MMEngine's ``AmpOptimWrapper`` requires CUDA (or NPU/MLU/MUSA);
    ``--amp`` falls back to this wrapper (bfloat16, no loss scaling, which
    bfloat16 does not need) when no GPU is present.
    """

    def __init__(self, *args, dtype: str = 'bfloat16', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), \
                torch.autocast('cpu', dtype=self.cast_dtype):
            yield


def init_cpu_process_group(launcher: str, dist_cfg: dict) -> None:
    """Start the process group for CPU-only distributed runs.

    MMEngine's ``init_dist`` calls ``torch.cuda.set_device``, which fails on
    a CPU-only torch. The runner skips ``init_dist`` when a process group
    already exists, so it is created here (``env://``, as torchrun sets it).
    """
    import torch.distributed as torch_dist
    if torch_dist.is_initialized():
        return
    if launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {launcher} needs CUDA; on a CPU-only machine '
            'distributed runs use --launcher pytorch (tools/dist_train.sh)')
    kwargs = {k: v for k, v in dist_cfg.items() if k != 'backend'}
    torch_dist.init_process_group(
        backend=dist_cfg.get('backend', 'gloo'), **kwargs)


def destroy_process_group(barrier: bool = True) -> None:
    """End the process group (if any) before the interpreter exits.

    Without it, gloo's worker threads are still joinable at exit and the
    process can abort with "terminate called without an active exception"
    (seen on CPU runs under torchrun, intermittently).

    Args:
        barrier (bool): Wait for every rank first (the normal end of a run;
            not after an error, where a peer may never arrive).
    """
    import torch.distributed as torch_dist
    if torch_dist.is_available() and torch_dist.is_initialized():
        if barrier:
            torch_dist.barrier()
        torch_dist.destroy_process_group()


def add_hooks(cfg: Config, names: Sequence[str]) -> List[str]:
    """Append the hooks ``names`` missing from ``cfg.custom_hooks``.

    Returns:
        List[str]: The hook types added.
    """
    hooks = list(cfg.get('custom_hooks', None) or [])
    present = {h.get('type') if isinstance(h, dict) else type(h).__name__
               for h in hooks}
    added = [name for name in names if name not in present]
    cfg.custom_hooks = hooks + [dict(type=name) for name in added]
    return added


def prepare_config(cfg: Config,
                   launcher: str = 'none',
                   amp: bool = False,
                   config_path: Optional[str] = None,
                   work_dir: Optional[str] = None) -> Config:
    """Adapt ``cfg`` to this machine, in place, logging every change.

    - ``work_dir``: CLI, else the config's, else ``work_dirs/<config name>``.
    - No CUDA: ``SyncBN`` becomes ``BN`` (``SyncBatchNorm`` is GPU-only
      under DDP); when distributed, an ``nccl`` backend becomes ``gloo``
      and DDP gets ``device_ids=None`` (required for CPU modules).
    - ``amp``: ``AmpOptimWrapper`` on GPU, :class:`CPUAutocastOptimWrapper`
      on CPU.
    - torch >= 2.6 ``weights_only`` loading: MMEngine's checkpoint types are
      allow-listed (:func:`~sar_plugin.utils.checkpoint.enable_safe_loading`),
      so ``--resume`` and ``load_from`` work.
    """
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        name = osp.splitext(osp.basename(config_path or 'run'))[0]
        cfg.work_dir = osp.join('./work_dirs', name)

    on_gpu = torch.cuda.is_available()
    if not on_gpu:
        _, changed = sync_bn_to_bn(cfg.model)
        if changed:
            print_log(
                f'No CUDA device: converted {changed} SyncBN norm config(s) '
                'to BN (SyncBatchNorm only runs on GPU modules under DDP).',
                logger='current')
        if launcher != 'none':
            dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
            if dist_cfg.get('backend', 'nccl') == 'nccl':
                dist_cfg['backend'] = 'gloo'
                print_log('No CUDA device: using the gloo backend.',
                          logger='current')
            # DDP refuses device_ids for CPU modules; MMEngine passes
            # [LOCAL_RANK] unless the wrapper config says otherwise.
            wrapper = cfg.get('model_wrapper_cfg', None) or dict(
                type='MMDistributedDataParallel',
                broadcast_buffers=False,
                find_unused_parameters=cfg.get('find_unused_parameters',
                                               False))
            wrapper['device_ids'] = None
            cfg.model_wrapper_cfg = wrapper
            init_cpu_process_group(launcher, dist_cfg)

    if amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper in ('AmpOptimWrapper', 'CPUAutocastOptimWrapper'):
            print_log('AMP training is already enabled in your config.',
                      logger='current', level=logging.WARNING)
        elif wrapper != 'OptimWrapper':
            raise ValueError('--amp needs optim_wrapper.type=OptimWrapper, '
                             f'got {wrapper!r}')
        elif on_gpu:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
        else:
            cfg.optim_wrapper.type = 'CPUAutocastOptimWrapper'
            print_log('No CUDA device: --amp uses bfloat16 autocast on the '
                      'CPU.', logger='current')
    enable_safe_loading()
    return cfg
