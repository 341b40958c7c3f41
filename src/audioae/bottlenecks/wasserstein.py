"""Wasserstein bottleneck: an MMD penalty pulls the latents towards N(0, I).

Tolstikhin et al., "Wasserstein Auto-Encoders", ICLR 2018 (WAE-MMD), with the kernel that
stable-audio-tools uses (its `compute_mmd`). For latents z of shape (B, C, L), flattened to
N = B * L vectors of dimension C, and as many samples n ~ N(0, I):

    K(x, y) = mean_{i, j} exp(-||x_i - y_j||^2 / C^2)       (diagonal included)
    mmd     = K(z, z) + K(n, n) - 2 K(z, n)

The bandwidth C^2 is the reference's (a mean over channels, then one more division by C, §11
item 6). The penalty is computed only in training mode. The reference builds the (N, N, C)
difference tensor; this computes the same numbers from pairwise distances in O(N^2) memory,
which still grows with the square of batch * frames.

Decoding appends `noise_augment_dim` channels of N(0, 1) noise, so the decoder's input width is
`latent_dim + noise_augment_dim` (derived by audioae.build from `out_channels`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from audioae.bottlenecks.base import Bottleneck, BottleneckResult, append_noise


def gaussian_kernel(x: Tensor, y: Tensor) -> Tensor:
    """mean_{i,j} exp(-||x_i - y_j||^2 / C^2) for x (N, C) and y (M, C); a scalar."""
    # ||x - y||^2 = ||x||^2 + ||y||^2 - 2 x.y: (N, M) memory instead of (N, M, C), and no
    # square root whose gradient is undefined on the diagonal
    dist2 = x.square().sum(1, keepdim=True) + y.square().sum(1) - 2 * x @ y.T
    return torch.exp(-dist2.clamp_min(0) / x.shape[1] ** 2).mean()


def compute_mmd(latents: Tensor) -> Tensor:
    """MMD between (B, C, L) latents, as B * L vectors of C, and as many N(0, I) samples."""
    z = latents.transpose(1, 2).reshape(-1, latents.shape[1])
    with torch.autocast(z.device.type, enabled=False):  # the kernel needs full precision
        z = z.float()
        noise = torch.randn_like(z)
        return gaussian_kernel(z, z) + gaussian_kernel(noise, noise) - 2 * gaussian_kernel(z, noise)


class Wasserstein(Bottleneck):
    """(B, latent_dim, L) -> same shape; emits `mmd` while training.

    use_tanh: soft-clip the latents to (-tanh_scale, tanh_scale); the MMD sees the pre-tanh
        values, as in the reference.
    bypass_mmd: skip the O((B*L)^2) computation and report mmd = 0.
    noise_augment_dim: noise channels appended before the decoder.
    """

    loss_names = ("mmd",)

    def __init__(
        self,
        latent_dim: int,
        noise_augment_dim: int = 0,
        bypass_mmd: bool = False,
        use_tanh: bool = False,
        tanh_scale: float = 5.0,
        loss_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(latent_dim, loss_weights)
        self.noise_augment_dim = int(noise_augment_dim)
        self.bypass_mmd = bypass_mmd
        self.use_tanh = use_tanh
        self.tanh_scale = float(tanh_scale)

    @property
    def out_channels(self) -> int:
        return self.latent_dim + self.noise_augment_dim

    def encode(self, x: Tensor, sample: bool = True) -> BottleneckResult:
        losses = {}
        if self.training:
            losses["mmd"] = x.new_zeros(()) if self.bypass_mmd else compute_mmd(x)
        if self.use_tanh:
            x = torch.tanh(x / self.tanh_scale) * self.tanh_scale
        return BottleneckResult(x, losses=losses)

    def decode(self, latents: Tensor) -> Tensor:
        return append_noise(latents, self.noise_augment_dim)
