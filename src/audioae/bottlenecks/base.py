"""The bottleneck contract shared by every bottleneck.

A bottleneck maps the encoder output (B, in_channels, L) to latents (B, latent_dim, L) and owns
its regulariser: it returns its losses by name (unweighted), a discrete bottleneck its codes,
and scalars worth logging. It also owns the default weights of those losses, so the trainer can
weight every term by name without knowing which bottleneck it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from audioae.errors import ConfigError
from audioae.losses.weighting import flatten


@dataclass
class BottleneckResult:
    """What `Bottleneck.encode` returns.

    latents: (B, latent_dim, L), the input of `Bottleneck.decode`.
    losses: unweighted regularisers by name, e.g. {"kl": scalar}.
    codes: (B, n_quantizers, L) int64 for a discrete bottleneck, else None.
    extras: scalars logged during training (e.g. codebook usage), and tensors worth keeping.
    """

    latents: Tensor
    losses: dict[str, Tensor] = field(default_factory=dict)
    codes: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)


class Bottleneck(nn.Module):
    """Base class. Subclasses set `loss_names` and override `encode` (and `decode` if needed).

    latent_dim: channels of the latents handed to downstream models.
    loss_weights: weight of each loss this bottleneck emits, by name; a name it never emits is
        an error. Losses without a weight are logged but not added to the objective.
    """

    loss_names: tuple[str, ...] = ()
    is_discrete: bool = False

    def __init__(self, latent_dim: int, loss_weights: Mapping[str, float] | None = None):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.loss_weights = flatten(loss_weights or {})
        unknown = sorted(set(self.loss_weights) - set(self.loss_names))
        if unknown:
            emitted = ", ".join(self.loss_names) or "no losses"
            raise ConfigError(
                f"bottleneck.loss_weights: {', '.join(unknown)} is not a loss of "
                f"{type(self).__name__} (it emits {emitted})"
            )

    @property
    def in_channels(self) -> int:
        """Width the encoder must output."""
        return self.latent_dim

    @property
    def out_channels(self) -> int:
        """Width the decoder receives (latent_dim plus any noise channels)."""
        return self.latent_dim

    def encode(self, x: Tensor, sample: bool = True) -> BottleneckResult:
        """(B, in_channels, L) -> latents (B, latent_dim, L). `sample` only matters for
        stochastic bottlenecks; False gives their deterministic (mean) latents."""
        return BottleneckResult(x)

    def decode(self, latents: Tensor) -> Tensor:
        """(B, latent_dim, L) -> decoder input (B, out_channels, L)."""
        return latents

    def init_encoder_output(self, encoder: nn.Module) -> None:
        """Called once by `build_autoencoder` on a freshly built encoder: a bottleneck that needs
        its input initialised a certain way sets the encoder's output layer here (the VAE's
        `init_std`). Loaded weights replace whatever this sets."""


def output_conv(encoder: nn.Module, channels: int) -> nn.Conv1d:
    """The encoder's last Conv1d with `channels` output channels and a bias: the layer whose
    output the bottleneck receives."""
    convs = [
        m
        for m in encoder.modules()
        if isinstance(m, nn.Conv1d) and m.out_channels == channels and m.bias is not None
    ]
    if not convs:
        raise ConfigError(
            f"{type(encoder).__name__} has no Conv1d with {channels} output channels and a "
            "bias to initialise"
        )
    return convs[-1]


def append_noise(latents: Tensor, noise_dim: int) -> Tensor:
    """Concatenate `noise_dim` channels of N(0, 1) noise to (B, C, L) latents."""
    if noise_dim == 0:
        return latents
    b, _, length = latents.shape
    noise = torch.randn(b, noise_dim, length, device=latents.device, dtype=latents.dtype)
    return torch.cat([latents, noise], dim=1)


@torch.no_grad()
def codebook_stats(codes: Tensor, codebook_size: int) -> dict[str, Tensor]:
    """Usage and perplexity of each codebook over the codes (B, Q, L) of one batch.

    usage/q{i}: fraction of the codebook's entries used at least once.
    perplexity/q{i}: exp(entropy) of the code histogram; 1 for a single code, codebook_size
    for a uniform spread. Codes of -1 (dropped-out stages) are ignored.
    """
    n_q = codes.shape[1]
    # one bincount for all codebooks: bin 0 of each codebook collects the -1s
    offsets = torch.arange(n_q, device=codes.device).view(1, n_q, 1) * (codebook_size + 1)
    flat = (codes + 1 + offsets).reshape(-1)
    counts = torch.bincount(flat, minlength=n_q * (codebook_size + 1))
    counts = counts.view(n_q, codebook_size + 1)[:, 1:].float()
    probs = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(dim=1)
    usage = (counts > 0).float().mean(dim=1)
    stats = {}
    for i in range(n_q):
        stats[f"usage/q{i}"] = usage[i]
        stats[f"perplexity/q{i}"] = entropy[i].exp()
    return stats
