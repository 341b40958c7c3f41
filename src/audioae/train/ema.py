"""Exponential moving average of the autoencoder's weights (Polyak & Juditsky, 1992).

The averaging is torch.optim.swa_utils' EMA update. The trainer gives it a deep copy of the
built model (weight-normalised nets copy through nets/weight_norm.DeepCopyable), so a
pretransform's checkpoint is read once.

The decay warms up as in ema-pytorch (used by stable-audio-tools):
    decay(n) = min(decay, 1 - n ** -power) for the n-th update (the first copies the weights),
so early averages are not dominated by the random initialisation.

stable-audio-tools 0.0.20 updates its average on every 5th generator step only, and its first
2000 updates copy the weights (`every=5, start=2000`, what `audioae-convert` sets): the n-th
update then averages with decay(n - start).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn

from audioae.errors import ConfigError


class EMA(nn.Module):
    """Holds the averaged copy in `.model`; call `update(online)` after each optimizer step."""

    def __init__(
        self,
        model: nn.Module,
        decay: float = 0.9999,
        power: float = 0.75,
        every: int = 1,
        start: int = 0,
    ):
        super().__init__()
        if every < 1 or start < 0 or not 0.0 <= decay < 1.0:
            raise ConfigError(
                f"trainer.ema: need every >= 1, start >= 0 and decay in [0, 1); got every={every}, "
                f"start={start}, decay={decay}"
            )
        self.model = model.requires_grad_(False).eval()
        self.decay, self.power, self.every, self.start = decay, power, every, start
        # calls of update(), i.e. finite generator steps (a checkpoint keeps it)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def decay_at(self, n: int) -> float:
        """Decay of the n-th update (n >= 1); the first `start` + 1 copy the weights."""
        n -= self.start
        return min(self.decay, 1.0 - n**-self.power) if n > 1 else 0.0

    @torch.no_grad()
    def update(self, online: nn.Module) -> None:
        """Average the parameters (on every `every`-th call); copy the buffers. Buffers are
        running statistics already (EMA codebooks, their counts, "initialised" flags): averaging
        them again would lag, and a stale flag would make a quantizer re-initialise its codebook
        from a demo batch."""
        self.updates += 1
        if int(self.updates) % self.every:
            return
        ema = [p.detach() for p in self.model.parameters()]
        cur = [p.detach() for p in online.parameters()]
        get_ema_multi_avg_fn(self.decay_at(int(self.updates) // self.every))(ema, cur, None)
        for mine, theirs in zip(self.model.buffers(), online.buffers(), strict=True):
            mine.copy_(theirs)

    def train(self, mode: bool = True):  # the average is never in training mode
        super().train(mode)
        self.model.eval()
        return self
