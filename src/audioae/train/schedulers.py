"""Learning-rate schedulers not in torch.optim.lr_scheduler."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


class InverseLR(LRScheduler):
    """Inverse-decay schedule with exponential warmup (stable-audio-tools, k-diffusion):

        lr(t) = (1 - warmup ** (t + 1)) * max(final_lr, base_lr * (1 + t / inv_gamma) ** -power)

    with t the number of `step()` calls so far. `warmup` in [0, 1) sets the warmup speed
    (0.999 takes ~5k steps to reach 99%); the warmup factor also multiplies `final_lr`.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        inv_gamma: float = 1.0,
        power: float = 1.0,
        warmup: float = 0.0,
        final_lr: float = 0.0,
        last_epoch: int = -1,
    ):
        if not 0.0 <= warmup < 1:
            raise ValueError(f"InverseLR: warmup must be in [0, 1), got {warmup}")
        self.inv_gamma, self.power, self.warmup, self.final_lr = inv_gamma, power, warmup, final_lr
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t = self.last_epoch
        warmup = 1 - self.warmup ** (t + 1)
        decay = (1 + t / self.inv_gamma) ** -self.power
        return [warmup * max(self.final_lr, base * decay) for base in self.base_lrs]
