"""DAC encoder and decoder, as stable-audio-tools wraps them.

Kumar et al., "High-Fidelity Audio Compression with Improved RVQGAN", NeurIPS 2023
(arXiv:2306.06546): descript-audio-codec's convolutional encoder and decoder (Snake
activations, weight-normalised convolutions), used without its quantizer. Stable Audio 1.0's VAE
is this pair with a VAE bottleneck (Evans et al., "Fast Timing-Conditioned Latent Audio Diffusion",
ICML 2024).

The layout follows stable-audio-tools (`DACEncoderWrapper`/`DACDecoderWrapper`), so its
checkpoints load with `strict=True`; under the autoencoder the keys are
`encoder.encoder.block.{i}...`, `encoder.proj_out.{weight,bias}` and `decoder.decoder.model.{i}...`:
- the DAC encoder's last convolution keeps its full width (`d_model * 2 ** len(strides)`), and a
  plain (not weight-normalised) 1x1 `proj_out` maps it to `latent_dim`;
- `in_channels != 1` replaces the first convolution (`encoder.block.0`);
- the DAC decoder always ends in `Tanh` (the library hard-codes it).
Both keep PyTorch's default initialisation: DAC's `init_weights` belongs to its top-level model.
Differences from the reference wrappers, none of which changes a weight: `d_model`/`strides` and
`channels`/`rates` are typed arguments with DAC's defaults (the reference reads them from its
kwargs, so a config without them fails with a KeyError); `latent_dim` is always derived, so the
reference's identity-projection path (no `latent_dim`) does not exist; both modules deep-copy
despite their weight-norm hooks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dac.model.dac import Decoder as _DACDecoder
from dac.model.dac import Encoder as _DACEncoder
from dac.nn.layers import WNConv1d
from torch import Tensor, nn

from audioae.nets.weight_norm import DeepCopyable


class DACEncoder(DeepCopyable):
    """(B, in_channels, T) -> (B, latent_dim, T // downsampling_ratio).

    `strides` downsample in the order given; each block doubles the width, starting from
    `d_model`. T should be a multiple of `downsampling_ratio` (the product of `strides`).
    """

    def __init__(
        self,
        in_channels: int = 1,
        latent_dim: int = 64,
        d_model: int = 64,
        strides: Sequence[int] = (2, 4, 8, 8),
    ) -> None:
        super().__init__()
        strides = [int(s) for s in strides]
        width = d_model * 2 ** len(strides)
        self.in_channels = in_channels
        self.latent_dim = latent_dim
        self.downsampling_ratio = math.prod(strides)
        self.encoder = _DACEncoder(d_model=d_model, strides=strides, d_latent=width)
        if in_channels != 1:
            self.encoder.block[0] = WNConv1d(in_channels, d_model, kernel_size=7, padding=3)
        self.proj_out = nn.Conv1d(width, latent_dim, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj_out(self.encoder(x))


class DACDecoder(DeepCopyable):
    """(B, latent_dim, L) -> (B, out_channels, about L * upsampling_ratio), in (-1, 1).

    `rates` upsample in the order given (DAC's decoder order, e.g. (8, 8, 4, 2) against encoder
    strides (2, 4, 8, 8)); only their product has to match the encoder's. Block i narrows the
    width from `channels // 2**i` to `channels // 2**(i + 1)`. An odd rate s yields L * s - 1
    samples (transposed-conv padding), so callers trim or pad. The output passes through Tanh.
    """

    def __init__(
        self,
        latent_dim: int = 64,
        out_channels: int = 1,
        channels: int = 1536,
        rates: Sequence[int] = (8, 8, 4, 2),
    ) -> None:
        super().__init__()
        rates = [int(r) for r in rates]
        if channels // 2 ** len(rates) < 1:
            raise ValueError(
                f"decoder.channels={channels} is too narrow for {len(rates)} rates: "
                f"block {len(rates)} would have {channels} // {2 ** len(rates)} = 0 channels"
            )
        self.latent_dim = latent_dim
        self.out_channels = out_channels
        self.upsampling_ratio = math.prod(rates)
        self.decoder = _DACDecoder(latent_dim, channels, rates, d_out=out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(x)
