"""Variational bottleneck (Kingma & Welling, 2014, "Auto-Encoding Variational Bayes").

Follows stable-audio-tools exactly, for checkpoint and loss-scale parity:
the encoder emits 2 * latent_dim channels, split into mean and scale (mean first);
std = softplus(scale) + 1e-4 (the scale parameterises the std, not the log-variance), and

    kl = sum_c (mean^2 + var - log(var) - 1), averaged over batch and time

with no factor 1/2, i.e. twice the textbook KL to N(0, I). Unlike the reference, sampling can be
turned off (`sample=False`) to get the deterministic mean for inference.

`init_std` (default None: the reference's initialisation) sets the bias of the encoder's output
layer on the scale channels so that the posterior std starts near `init_std` instead of
softplus(0) = 0.69. The reference's start drowns the latents in noise: an Oobleck encoder's
initial means are about 0.1 rms, so the decoder sees -17 dB of signal, learns to ignore its
input, and the encoder's means collapse towards a constant (measured on the real-audio set,
docs/benchmarks.md: the latents of different files went from 25% to 6% apart in 300 steps and
the output no longer depended on the input). The parameterisation is unchanged (the same state
dict, the same std = softplus(scale) + 1e-4), so checkpoints and exports are unaffected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audioae.bottlenecks.base import Bottleneck, BottleneckResult, output_conv
from audioae.errors import ConfigError


def vae_sample(mean: Tensor, scale: Tensor, sample: bool = True) -> tuple[Tensor, Tensor]:
    """Returns (latents, kl) for mean and scale of shape (B, D, L)."""
    std = F.softplus(scale) + 1e-4
    var = std * std
    kl = (mean * mean + var - torch.log(var) - 1).sum(dim=1).mean()
    latents = mean + std * torch.randn_like(mean) if sample else mean
    return latents, kl


def check_init_std(init_std: float | None) -> float | None:
    if init_std is not None and not 1e-4 < init_std < 10:
        raise ConfigError(f"bottleneck.init_std must lie in (1e-4, 10), got {init_std}")
    return init_std


class PosteriorSampling:
    """Mixin of the bottlenecks that sample with `vae_sample`: the encoder emits mean and scale
    (2 * latent_dim channels), and `init_std` (set by the subclass, None: the encoder's own
    init) starts the posterior std there through the output layer's bias on the scale
    channels: softplus(bias) + 1e-4 = init_std."""

    latent_dim: int
    init_std: float | None = None

    @property
    def in_channels(self) -> int:
        return 2 * self.latent_dim

    def init_encoder_output(self, encoder: nn.Module) -> None:
        if self.init_std is None:
            return
        conv = output_conv(encoder, 2 * self.latent_dim)
        with torch.no_grad():
            conv.bias[self.latent_dim :] = math.log(math.expm1(self.init_std - 1e-4))


class VAE(PosteriorSampling, Bottleneck):
    """(B, 2 * latent_dim, L) -> (B, latent_dim, L); emits `kl`."""

    loss_names = ("kl",)

    def __init__(
        self,
        latent_dim: int,
        loss_weights: Mapping[str, float] | None = None,
        init_std: float | None = None,
    ):
        super().__init__(latent_dim, loss_weights)
        self.init_std = check_init_std(init_std)

    def encode(self, x: Tensor, sample: bool = True) -> BottleneckResult:
        mean, scale = x.chunk(2, dim=1)
        latents, kl = vae_sample(mean, scale, sample)
        return BottleneckResult(latents, losses={"kl": kl})
