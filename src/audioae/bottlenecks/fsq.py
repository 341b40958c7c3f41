"""Finite scalar quantization (vector-quantize-pytorch's `FSQ`).

Mentzer et al., "Finite Scalar Quantization: VQ-VAE Made Simple", ICLR 2024 (arXiv:2309.15505):
each of len(levels) channels is bounded (tanh) and rounded to one of levels[d] values, with a
straight-through gradient for the rounding. There is no codebook to learn and no loss. A code is
the mixed-radix number of the rounded values, so codebook_size = prod(levels). With
`num_codebooks` > 1 the projected latent is split into that many groups, each coded separately.
When latent_dim != len(levels) * num_codebooks, linear projections map in and out.

Token layout, shared by every discrete bottleneck: codes are (B, num_codebooks, L) int64.

Reference bug fixed (its §11 item 21): with num_codebooks = 1 the library drops the codebook
dimension and the reference's rearrange fails; here the dimension is always kept.
`noise_augment_dim` noise channels are appended before the decoder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from torch import Tensor
from vector_quantize_pytorch import FSQ as _FSQ

from audioae.bottlenecks.base import Bottleneck, BottleneckResult, append_noise, codebook_stats


class FSQ(Bottleneck):
    """(B, latent_dim, L) -> quantized (B, latent_dim, L). No losses.

    levels: values per quantized channel (FSQ paper: [8, 5, 5, 5] for about 2^10 codes);
        a level of 2 needs `preserve_symmetry`.
    preserve_symmetry, noise_dropout: the symmetric quantizer and training noise of
        arXiv:2411.19842 §3.2 (noise_dropout needs preserve_symmetry).
    extras: `codes` (B, num_codebooks, L) int64 and per-codebook `usage/q{i}`, `perplexity/q{i}`.
    The quantizer runs in float32 whatever the input dtype; the latents come back in it.
    """

    is_discrete = True

    def __init__(
        self,
        latent_dim: int,
        levels: Sequence[int] = (8, 5, 5, 5),
        num_codebooks: int = 1,
        noise_augment_dim: int = 0,
        preserve_symmetry: bool = False,
        noise_dropout: float = 0.0,
        projection_has_bias: bool = True,
        loss_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(latent_dim, loss_weights)
        levels = [int(n) for n in levels]
        self.levels = levels
        self.num_quantizers = int(num_codebooks)
        self.codebook_size = math.prod(levels)
        self.noise_augment_dim = int(noise_augment_dim)
        self.quantizer = _FSQ(
            levels=levels,
            dim=latent_dim,
            num_codebooks=self.num_quantizers,
            keep_num_codebooks_dim=True,
            preserve_symmetry=preserve_symmetry,
            noise_dropout=float(noise_dropout),
            projection_has_bias=projection_has_bias,
        )

    @property
    def out_channels(self) -> int:
        return self.latent_dim + self.noise_augment_dim

    def encode(self, x: Tensor, sample: bool = True) -> BottleneckResult:
        z, indices = self.quantizer(x.float().transpose(1, 2))
        codes = indices.permute(0, 2, 1).long()  # (B, L, Q) -> (B, Q, L)
        return BottleneckResult(
            z.transpose(1, 2).to(x.dtype),
            codes=codes,
            extras=codebook_stats(codes, self.codebook_size),
        )

    def decode(self, latents: Tensor) -> Tensor:
        return append_noise(latents, self.noise_augment_dim)

    def encode_tokens(self, x: Tensor) -> Tensor:
        """(B, latent_dim, L) encoder output -> codes (B, num_codebooks, L) int64."""
        _, indices = self.quantizer(x.float().transpose(1, 2))
        return indices.permute(0, 2, 1).long()

    def decode_tokens(self, codes: Tensor) -> Tensor:
        """codes (B, num_codebooks, L) -> quantized latents (B, latent_dim, L), float32."""
        return self.quantizer.indices_to_codes(codes.transpose(1, 2)).transpose(1, 2)
