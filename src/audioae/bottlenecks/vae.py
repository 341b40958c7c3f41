"""Variational bottleneck (Kingma & Welling, 2014, "Auto-Encoding Variational Bayes").

Follows stable-audio-tools exactly, for checkpoint and loss-scale parity:
the encoder emits 2 * latent_dim channels, split into mean and scale (mean first);
std = softplus(scale) + 1e-4 (the scale parameterises the std, not the log-variance), and

    kl = sum_c (mean^2 + var - log(var) - 1), averaged over batch and time

with no factor 1/2, i.e. twice the textbook KL to N(0, I). Unlike the reference, sampling can be
turned off (`sample=False`) to get the deterministic mean for inference.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from audioae.bottlenecks.base import Bottleneck, BottleneckResult


def vae_sample(mean: Tensor, scale: Tensor, sample: bool = True) -> tuple[Tensor, Tensor]:
    """Returns (latents, kl) for mean and scale of shape (B, D, L)."""
    std = F.softplus(scale) + 1e-4
    var = std * std
    kl = (mean * mean + var - torch.log(var) - 1).sum(dim=1).mean()
    latents = mean + std * torch.randn_like(mean) if sample else mean
    return latents, kl


class VAE(Bottleneck):
    """(B, 2 * latent_dim, L) -> (B, latent_dim, L); emits `kl`."""

    loss_names = ("kl",)

    def __init__(self, latent_dim: int, loss_weights: Mapping[str, float] | None = None):
        super().__init__(latent_dim, loss_weights)

    @property
    def in_channels(self) -> int:
        return 2 * self.latent_dim

    def encode(self, x: Tensor, sample: bool = True) -> BottleneckResult:
        mean, scale = x.chunk(2, dim=1)
        latents, kl = vae_sample(mean, scale, sample)
        return BottleneckResult(latents, losses={"kl": kl})
