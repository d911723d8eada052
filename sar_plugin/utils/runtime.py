"""What ``tools/train.py`` and ``tools/test.py`` do to a config before the
runner is built, so one config file serves a GPU cluster and a CPU laptop."""
import logging
import os.path as osp
from contextlib import contextmanager
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmseg.registry import OPTIM_WRAPPERS

from .checkpoint import allow_mmengine_checkpoints
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


def prepare_config(cfg: Config,
                   launcher: str = 'none',
                   amp: bool = False,
                   config_path: Optional[str] = None,
                   work_dir: Optional[str] = None) -> Config:
    """Adapt ``cfg`` to this machine, in place, logging every change.

    - ``work_dir``: CLI, else the config's, else ``work_dirs/<config name>``.
    - No CUDA: ``SyncBN`` becomes ``BN`` (``SyncBatchNorm`` is GPU-only
      under DDP) and an ``nccl`` backend becomes ``gloo``.
    - ``amp``: ``AmpOptimWrapper`` on GPU, :class:`CPUAutocastOptimWrapper`
      on CPU.
    - torch >= 2.6 ``weights_only`` loading: MMEngine's checkpoint types are
      allow-listed, so ``--resume`` and ``load_from`` work.
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
        dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
        if launcher != 'none' and dist_cfg.get('backend', 'nccl') == 'nccl':
            dist_cfg['backend'] = 'gloo'
            print_log('No CUDA device: using the gloo backend.',
                      logger='current')

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
    allow_mmengine_checkpoints()
    return cfg
