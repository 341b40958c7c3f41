"""L2-normalised latents: every frame is projected onto the unit sphere in R^latent_dim.

A hyperspherical latent space as in Davidson et al., "Hyperspherical Variational Auto-Encoders",
UAI 2018 (here without sampling); stable-audio-tools' `l2_norm` bottleneck. `decode` normalises
again, so latents produced elsewhere (e.g. by a diffusion model) land on the sphere too.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor

from audioae.bottlenecks.base import Bottleneck, BottleneckResult


class L2Norm(Bottleneck):
    """(B, latent_dim, L) -> x / ||x|| over the channels, same shape. No losses."""

    def __init__(self, latent_dim: int, loss_weights: Mapping[str, float] | None = None) -> None:
        super().__init__(latent_dim, loss_weights)

    def encode(self, x: Tensor, sample: bool = True) -> BottleneckResult:
        return BottleneckResult(F.normalize(x, dim=1))

    def decode(self, latents: Tensor) -> Tensor:
        return F.normalize(latents, dim=1)
