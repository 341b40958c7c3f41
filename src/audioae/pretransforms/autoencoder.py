"""A trained autoencoder as the pretransform of another one (a latent autoencoder on top of an
audio autoencoder), usually frozen.

    encode(x) = inner.encode(x).latents / scale        (B, C, T) -> (B, D, T / inner_ratio)
    decode(z) = inner.decode(z * scale)

`scale` should be about the latents' standard deviation so that the outer model sees unit-scale
inputs (stable-audio-tools' docs/pretransforms.md). VAE latents are the mean unless `sample`.
The pretransform is given the built inner model; loading it from a trained run is the job of
`audioae.inference.loading.autoencoder_pretransform`, which the config (conf/pretransform/
autoencoder.yaml) targets. Its state-dict keys are `pretransform.model.*` in the outer model, as
in the reference, so the outer checkpoint holds the inner weights.
"""

from __future__ import annotations

from torch import Tensor, nn

from audioae.errors import ConfigError
from audioae.pretransforms.base import Pretransform


class AutoencoderPretransform(Pretransform):
    """(B, io_channels, T) -> (B, latent_dim, T // ratio) with a trained AudioAutoencoder.

    model: the inner autoencoder (encode(x, sample) -> result with .latents; decode(z)), with
        `sample_rate`, `in_channels`, `out_channels`, `latent_dim`, `downsampling_ratio`.
    scale: latents are divided by it on encode and multiplied on decode.
    sample: draw VAE latents instead of using the mean.
    sample_rate: the outer model's sample rate, checked against the inner model's.
    """

    def __init__(
        self,
        model: nn.Module,
        scale: float = 1.0,
        sample: bool = False,
        enable_grad: bool = False,
        sample_rate: int | None = None,
    ):
        super().__init__(enable_grad)
        if sample_rate is not None and model.sample_rate != sample_rate:
            raise ConfigError(
                f"pretransform model runs at {model.sample_rate} Hz but sample_rate={sample_rate}; "
                "train the outer model at the pretransform's rate"
            )
        if model.in_channels != model.out_channels:
            raise ConfigError(
                f"pretransform model maps {model.in_channels} to {model.out_channels} channels; "
                "a pretransform must give back what it takes"
            )
        if scale <= 0:
            raise ConfigError(f"pretransform.scale={scale}: must be positive")
        self.model = model.requires_grad_(enable_grad)
        self.model.train(False)
        self.scale, self.sample = float(scale), sample
        self.io_channels = model.in_channels
        self.encoded_channels = model.latent_dim
        self.downsampling_ratio = model.downsampling_ratio

    def train(self, mode: bool = True) -> AutoencoderPretransform:
        super().train(mode)
        if not self.enable_grad:  # a frozen model stays in inference mode (quantizers, dropout)
            self.model.train(False)
        return self

    def encode(self, audio: Tensor) -> Tensor:
        return self.model.encode(audio, sample=self.sample).latents / self.scale

    def decode(self, x: Tensor) -> Tensor:
        return self.model.decode(x * self.scale)
