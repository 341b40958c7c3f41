"""Residual vector quantization with EMA codebooks (vector-quantize-pytorch's `ResidualVQ`).

Zeghidour et al., "SoundStream: An End-to-End Neural Audio Codec", 2021 (arXiv:2107.03312),
Algorithm 1: each of `num_quantizers` codebooks quantizes the residual the previous ones left.
The codebooks are buffers updated by exponential moving averages of the assigned vectors
(van den Oord et al., "Neural Discrete Representation Learning", NeurIPS 2017, appendix), with
k-means initialisation and dead-code replacement; the encoder gets a commitment loss.
`RVQVAE` samples a VAE latent first (see bottlenecks/vae.py), then quantizes it.

Token layout, shared by every discrete bottleneck: codes are (B, n_quantizers, L) int64, with
-1 for stages skipped by quantizer dropout. (The reference returns (B, L, Q) here.)

Straight-through: with `rotation_trick=False` (the default here, and the behaviour of the
vector-quantize-pytorch 1.14.41 that stable-audio-tools pins, which predates the trick) each stage
passes its input's gradient through unchanged, and the next residual is formed from the detached
quantized value, so d(sum latents)/d(input) is `num_quantizers` everywhere. The installed library
(1.32) would default to the rotation trick instead (Fifer et al., "Restructuring Vector
Quantization with the Rotation Trick", 2024, arXiv:2410.06424); `rotation_trick: true` uses it.

Defaults are the reference factory's (codebook_size 1024, num_quantizers 8, decay 0.99, k-means
initialisation, threshold_ema_dead_code 2) except kmeans_iters: 10 (the library's) instead of 50.

Reference bug fixed: `decode_tokens` calls the library's `get_output_from_indices` (the reference
calls a misspelt method and fails, its §11 item 20).

Distributed training: the EMA statistics and dead-code replacement are per process unless the
library all-reduces them. `sync_codebook=None` lets the library decide when the module is built:
it synchronises whenever torch.distributed is initialised with more than one process (the
trainer creates its Accelerator, and so the process group, before building the model). Every
process must then run the training-mode forward the same number of times.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor
from vector_quantize_pytorch import ResidualVQ

from audioae.bottlenecks.base import Bottleneck, BottleneckResult, codebook_stats
from audioae.bottlenecks.vae import PosteriorSampling, check_init_std, vae_sample


class RVQ(Bottleneck):
    """(B, latent_dim, L) -> quantized (B, latent_dim, L); emits `vq/commitment_loss`.

    `vq/commitment_loss` is the library's loss averaged over the stages: commitment_weight *
    MSE(input, sg(quantized)) per stage, zero in eval mode. The codebooks learn by EMA
    (`decay`), not from a loss. `codebook_dim` other than latent_dim adds linear projections.
    extras: `codes` (B, Q, L) int64 and per-codebook `usage/q{i}`, `perplexity/q{i}`.
    """

    loss_names: tuple[str, ...] = ("vq/commitment_loss",)
    is_discrete = True

    def __init__(
        self,
        latent_dim: int,
        codebook_size: int = 1024,
        num_quantizers: int = 8,
        codebook_dim: int | None = None,
        decay: float = 0.99,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        threshold_ema_dead_code: float = 2.0,
        commitment_weight: float = 1.0,
        quantize_dropout: bool = False,
        rotation_trick: bool = False,
        sync_codebook: bool | None = None,
        loss_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(latent_dim, loss_weights)
        self.num_quantizers = int(num_quantizers)
        self.codebook_size = int(codebook_size)
        self.quantizer = ResidualVQ(
            dim=latent_dim,
            codebook_size=self.codebook_size,
            num_quantizers=self.num_quantizers,
            codebook_dim=codebook_dim,
            decay=decay,
            kmeans_init=kmeans_init,
            kmeans_iters=kmeans_iters,
            threshold_ema_dead_code=threshold_ema_dead_code,
            commitment_weight=commitment_weight,
            quantize_dropout=quantize_dropout,
            rotation_trick=rotation_trick,
            sync_codebook=sync_codebook,
        )

    def quantize(self, x: Tensor) -> BottleneckResult:
        """(B, latent_dim, L) -> quantized latents, commitment loss, codes and their stats."""
        z, indices, losses = self.quantizer(x.transpose(1, 2))
        codes = indices.transpose(1, 2).long()
        return BottleneckResult(
            z.transpose(1, 2),
            losses={"vq/commitment_loss": losses.mean()},
            codes=codes,
            extras=codebook_stats(codes, self.codebook_size),
        )

    def encode(self, x: Tensor, sample: bool = True) -> BottleneckResult:
        return self.quantize(x)

    def encode_tokens(self, x: Tensor) -> Tensor:
        """(B, in_channels, L) encoder output -> codes (B, num_quantizers, L) int64.

        Leaves the codebooks as they are (no EMA update, even in training mode); in training
        mode with quantize_dropout, skipped stages are -1 as in `encode`."""
        _, indices, _ = self.quantizer(x.transpose(1, 2), freeze_codebook=True)
        return indices.transpose(1, 2).long()

    def decode_tokens(self, codes: Tensor) -> Tensor:
        """codes (B, num_quantizers, L) -> quantized latents (B, latent_dim, L)."""
        return self.quantizer.get_output_from_indices(codes.transpose(1, 2)).transpose(1, 2)


class RVQVAE(PosteriorSampling, RVQ):
    """(B, 2 * latent_dim, L) -> VAE sample (as bottlenecks/vae.py) -> RVQ.

    Emits `kl` and `vq/commitment_loss`. `sample=False` quantizes the mean; `encode_tokens`
    always does, so tokens are deterministic.
    `init_std` starts the posterior std there, as in bottlenecks/vae.py (None: the encoder's own
    init).
    """

    loss_names = ("kl", "vq/commitment_loss")

    def __init__(self, *args, init_std: float | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.init_std = check_init_std(init_std)

    def encode(self, x: Tensor, sample: bool = True) -> BottleneckResult:
        mean, scale = x.chunk(2, dim=1)
        latents, kl = vae_sample(mean, scale, sample)
        result = self.quantize(latents)
        result.losses["kl"] = kl
        return result

    def encode_tokens(self, x: Tensor) -> Tensor:
        return super().encode_tokens(x.chunk(2, dim=1)[0])
