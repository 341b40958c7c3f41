"""Exponential moving average of the autoencoder's weights (Polyak & Juditsky, 1992).

The averaging is torch.optim.swa_utils' EMA update. The trainer gives it a deep copy of the
built model (weight-normalised nets copy through nets/weight_norm.DeepCopyable), so a
pretransform's checkpoint is read once.

The decay warms up as in ema-pytorch (used by stable-audio-tools):
    decay(n) = min(decay, 1 - n ** -power) for the n-th update (the first copies the weights),
so early averages are not dominated by the random initialisation.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn


class EMA(nn.Module):
    """Holds the averaged copy in `.model`; call `update(online)` after each optimizer step."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, power: float = 0.75):
        super().__init__()
        self.model = model.requires_grad_(False).eval()
        self.decay, self.power = decay, power
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def decay_at(self, n: int) -> float:
        """Decay of the n-th update (n >= 1)."""
        return min(self.decay, 1.0 - n**-self.power) if n > 1 else 0.0

    @torch.no_grad()
    def update(self, online: nn.Module) -> None:
        """Average the parameters; copy the buffers. Buffers are running statistics already
        (EMA codebooks, their counts, "initialised" flags): averaging them again would lag, and
        a stale flag would make a quantizer re-initialise its codebook from a demo batch."""
        self.updates += 1
        ema = [p.detach() for p in self.model.parameters()]
        cur = [p.detach() for p in online.parameters()]
        get_ema_multi_avg_fn(self.decay_at(int(self.updates)))(ema, cur, None)
        for mine, theirs in zip(self.model.buffers(), online.buffers(), strict=True):
            mine.copy_(theirs)

    def train(self, mode: bool = True):  # the average is never in training mode
        super().train(mode)
        self.model.eval()
        return self
