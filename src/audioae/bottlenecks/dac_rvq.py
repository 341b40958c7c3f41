"""Residual vector quantization as in descript-audio-codec (`dac.nn.quantize`).

Kumar et al., "High-Fidelity Audio Compression with Improved RVQGAN", NeurIPS 2023
(arXiv:2306.06546): SoundStream's residual VQ with factorised codes (each stage projects to a
small `codebook_dim` and looks up by cosine similarity, after Yu et al., "Vector-quantized Image
Modeling with Improved VQGAN", ICLR 2022) and quantizer dropout. The codebooks learn from
`vq/codebook_loss` = MSE(sg(z_e), z_q); the encoder from `vq/commitment_loss` =
MSE(z_e, sg(z_q)); both are summed over the stages and divided by n_codebooks, as in
stable-audio-tools. The straight-through estimator acts in each stage's codebook space, before
its output projection. `DACRVQVAE` samples a VAE latent first (see bottlenecks/vae.py).

Token layout, shared by every discrete bottleneck: codes are (B, n_codebooks, L) int64.

`quantize_on_decode` keeps the latents continuous (the pre-quantizer values, e.g. for a
diffusion model) and quantizes in `decode`. Reference bug fixed (its §11 item 22): there,
`encode` returned a tuple `(x, x)` in this mode and never computed the VQ losses, so the
codebooks could not learn. Here `encode` still runs the quantizer for the losses and the codes,
and returns the pre-quantizer latents. Tokens index quantized values, which are not in that
continuous latent space, so `decode_tokens` refuses this mode (the reference silently
re-quantizes the quantized values).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dac.nn.quantize import ResidualVectorQuantize
from torch import Tensor

from audioae.bottlenecks.base import Bottleneck, BottleneckResult, append_noise, codebook_stats
from audioae.bottlenecks.vae import PosteriorSampling, check_init_std, vae_sample


class DACRVQ(Bottleneck):
    """(B, latent_dim, L) -> quantized (B, latent_dim, L) (or the input, `quantize_on_decode`).

    In training mode every stage runs; with `quantizer_dropout` p, the first int(B * p) items of
    a batch keep only a random number (1..n_codebooks) of stages (DAC's scheme).
    extras: `codes` (B, n_codebooks, L) int64, `pre_quantizer` (B, latent_dim, L),
    `projected_latents` (B, sum(codebook_dim), L) and per-codebook `usage/q{i}`,
    `perplexity/q{i}`. `noise_augment_dim` noise channels are appended before the decoder.
    """

    loss_names: tuple[str, ...] = ("vq/commitment_loss", "vq/codebook_loss")
    is_discrete = True

    def __init__(
        self,
        latent_dim: int,
        n_codebooks: int = 9,
        codebook_size: int = 1024,
        codebook_dim: int | Sequence[int] = 8,
        quantizer_dropout: float = 0.0,
        quantize_on_decode: bool = False,
        noise_augment_dim: int = 0,
        loss_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(latent_dim, loss_weights)
        self.num_quantizers = int(n_codebooks)
        self.codebook_size = int(codebook_size)
        self.quantize_on_decode = quantize_on_decode
        self.noise_augment_dim = int(noise_augment_dim)
        dims = codebook_dim if isinstance(codebook_dim, int) else [int(d) for d in codebook_dim]
        self.quantizer = ResidualVectorQuantize(
            input_dim=latent_dim,
            n_codebooks=self.num_quantizers,
            codebook_size=self.codebook_size,
            codebook_dim=dims,
            quantizer_dropout=float(quantizer_dropout),
        )

    @property
    def out_channels(self) -> int:
        return self.latent_dim + self.noise_augment_dim

    def quantize(self, x: Tensor) -> BottleneckResult:
        """(B, latent_dim, L) -> quantized latents, VQ losses, codes and their stats."""
        z, codes, projected, commitment, codebook = self.quantizer(x)
        n = self.num_quantizers
        return BottleneckResult(
            z,
            losses={"vq/commitment_loss": commitment / n, "vq/codebook_loss": codebook / n},
            codes=codes,
            extras={
                "pre_quantizer": x,
                "projected_latents": projected,
                **codebook_stats(codes, self.codebook_size),
            },
        )

    def encode(self, x: Tensor, sample: bool = True) -> BottleneckResult:
        result = self.quantize(x)
        if self.quantize_on_decode:
            result.latents = x
        return result

    def decode(self, latents: Tensor) -> Tensor:
        if self.quantize_on_decode:
            latents = self.quantizer(latents)[0]
        return append_noise(latents, self.noise_augment_dim)

    def encode_tokens(self, x: Tensor) -> Tensor:
        """(B, in_channels, L) encoder output -> codes (B, n_codebooks, L) int64."""
        return self.quantizer(x)[1]

    def decode_tokens(self, codes: Tensor) -> Tensor:
        """codes (B, n_codebooks, L) -> quantized latents (B, latent_dim, L)."""
        if self.quantize_on_decode:
            raise ValueError(
                "decode_tokens is undefined with bottleneck.quantize_on_decode=true: the latents "
                "are the continuous pre-quantizer values, which codes do not determine; decode "
                "the latents of encode() instead, or train with quantize_on_decode=false"
            )
        return self.quantizer.from_codes(codes)[0]


class DACRVQVAE(PosteriorSampling, DACRVQ):
    """(B, 2 * latent_dim, L) -> VAE sample (as bottlenecks/vae.py) -> DAC RVQ.

    Emits `kl` and the VQ losses; `pre_quantizer` is the sampled latent. `sample=False`
    quantizes the mean; `encode_tokens` always does, so tokens are deterministic.
    `init_std` starts the posterior std there, as in bottlenecks/vae.py (None: the encoder's own
    init).
    """

    loss_names = ("kl", "vq/commitment_loss", "vq/codebook_loss")

    def __init__(self, *args, init_std: float | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.init_std = check_init_std(init_std)

    def encode(self, x: Tensor, sample: bool = True) -> BottleneckResult:
        mean, scale = x.chunk(2, dim=1)
        latents, kl = vae_sample(mean, scale, sample)
        result = super().encode(latents)
        result.losses["kl"] = kl
        return result

    def encode_tokens(self, x: Tensor) -> Tensor:
        return super().encode_tokens(x.chunk(2, dim=1)[0])
