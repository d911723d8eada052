"""An fp16-AMP-like optimizer wrapper for the skipped-step tests."""
import torch
from mmengine.optim import OptimWrapper


class ScaledOptimWrapper(OptimWrapper):
    """A real ``torch.amp.GradScaler`` on ``device``: the scaled loss goes
    backward, and the scaler skips the step when a gradient is not finite
    (then lowers its scale), as MMEngine's ``AmpOptimWrapper`` does.

    Args:
        optimizer: The wrapped optimizer.
        device: ``'cpu'`` or ``'cuda'``, the scaler's device type.
        init_scale: The scaler's first scale.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, device: str = 'cpu',
                 init_scale: float = 8.0) -> None:
        super().__init__(optimizer)
        self.loss_scaler = torch.amp.GradScaler(device, init_scale=init_scale)

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        self.loss_scaler.scale(loss).backward(**kwargs)

    def step(self, **kwargs) -> None:
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update()
