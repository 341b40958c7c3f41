"""Tanh bottleneck: soft-clips latents to (-scale, scale). Quick but can saturate."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from audioae.bottlenecks.base import Bottleneck, BottleneckResult


class Tanh(Bottleneck):
    """(B, latent_dim, L) -> tanh(x / scale) * scale, same shape. No losses."""

    def __init__(
        self, latent_dim: int, scale: float = 1.0, loss_weights: Mapping[str, float] | None = None
    ):
        super().__init__(latent_dim, loss_weights)
        self.scale = float(scale)

    def encode(self, x: Tensor, sample: bool = True) -> BottleneckResult:
        return BottleneckResult(torch.tanh(x / self.scale) * self.scale)
