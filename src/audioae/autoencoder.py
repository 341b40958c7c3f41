"""`AudioAutoencoder`: [pretransform] -> encoder -> bottleneck -> decoder -> [pretransform⁻¹].

Shapes: audio (B, in_channels, T) with T a multiple of `downsampling_ratio`;
latents (B, latent_dim, T // downsampling_ratio); decoded audio (B, out_channels, T).
`downsampling_ratio` includes the pretransform's.

Channels: a model whose `in_channels` and `out_channels` differ learns from audio with
`data_channels = max(in_channels, out_channels)` channels (what the training data delivers).
`inputs_and_targets` derives the encoder's input and the reconstruction target from it with
`convert_channels`, the one channel rule of training, validation, demos and inference:
- mono in, stereo out: the input is the channel mean (stable-audio-tools' `force_input_mono`),
  the target the stereo audio;
- stereo in, mono out: the input is the stereo audio, the target its channel mean (a model that
  learns a mono mixdown); mono data would only feed the encoder two equal channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audioae.bottlenecks.base import Bottleneck, BottleneckResult
from audioae.nets.weight_norm import data_dependent_init
from audioae.pretransforms.base import Pretransform


class AudioAutoencoder(nn.Module):
    """The model a run trains and the inference tools load.

    The submodule names (`encoder`, `decoder`, `bottleneck`, `pretransform`) are the
    stable-audio-tools names, so state dicts are interchangeable where the networks are.
    `downsampling_ratio` is the total: encoder strides times the pretransform's ratio.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        bottleneck: Bottleneck,
        sample_rate: int,
        in_channels: int,
        out_channels: int,
        downsampling_ratio: int,
        pretransform: Pretransform | None = None,
        soft_clip: bool = False,
    ):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.bottleneck = bottleneck
        self.pretransform = pretransform
        self.sample_rate = int(sample_rate)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.downsampling_ratio = int(downsampling_ratio)
        self.soft_clip = soft_clip
        self.frozen: tuple[str, ...] = ()

    def freeze(self, name: str) -> None:
        """Never train component `name` (encoder, decoder or bottleneck): its parameters get no
        gradient and it stays in inference mode, so a training-mode forward changes nothing in
        it either (RVQ's EMA codebook updates, quantizer dropout)."""
        getattr(self, name).requires_grad_(False)
        self.frozen = (*self.frozen, name)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).train(False)
        return self

    @property
    def data_channels(self) -> int:
        """Channels of the audio the model learns from: max(in_channels, out_channels)."""
        return max(self.in_channels, self.out_channels)

    def inputs_and_targets(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        """(B, C, T) audio, C = data_channels as the training data delivers it -> the encoder's
        input (B, in_channels, T) and the reconstruction target (B, out_channels, T), each by
        `convert_channels` (no copy where the counts already agree)."""
        return convert_channels(audio, self.in_channels), convert_channels(audio, self.out_channels)

    @property
    def latent_dim(self) -> int:
        return self.bottleneck.latent_dim

    @property
    def is_discrete(self) -> bool:
        return self.bottleneck.is_discrete

    def check_length(self, length: int) -> None:
        if length % self.downsampling_ratio:
            raise ValueError(
                f"audio length {length} is not a multiple of the downsampling ratio "
                f"{self.downsampling_ratio}; pad it (e.g. to "
                f"{-(-length // self.downsampling_ratio) * self.downsampling_ratio})"
            )

    def pre_bottleneck(self, audio: Tensor) -> Tensor:
        """(B, in_channels, T) -> encoder output (B, bottleneck.in_channels, T // ratio)."""
        if audio.dim() != 3 or audio.shape[1] != self.in_channels:
            raise ValueError(
                f"expected audio of shape (batch, {self.in_channels}, time), "
                f"got {tuple(audio.shape)}"
            )
        self.check_length(audio.shape[-1])
        if self.pretransform is not None:
            with torch.set_grad_enabled(self.pretransform.enable_grad and torch.is_grad_enabled()):
                audio = self.pretransform.encode(audio)
        return self.encoder(audio)

    def encode(self, audio: Tensor, sample: bool = True) -> BottleneckResult:
        """(B, in_channels, T) -> BottleneckResult with latents (B, latent_dim, T // ratio).

        `sample=False` makes stochastic bottlenecks return their mean (for inference)."""
        return self.bottleneck.encode(self.pre_bottleneck(audio), sample=sample)

    def decode(self, latents: Tensor) -> Tensor:
        """(B, latent_dim, L) -> (B, out_channels, L * ratio)."""
        audio = self.decoder(self.bottleneck.decode(latents))
        if self.pretransform is not None:
            audio = fit_length(audio, latents.shape[-1] * self.encoder.downsampling_ratio)
            # Not under no_grad even when frozen: the loss on the audio must reach the decoder
            # through it. Frozen = its parameters have requires_grad off (build_autoencoder).
            audio = self.pretransform.decode(audio)
        # Odd upsampling strides make transposed convolutions one sample short per block;
        # pad or trim so that decode(encode(x)) always has the length of x.
        audio = fit_length(audio, latents.shape[-1] * self.downsampling_ratio)
        return torch.tanh(audio) if self.soft_clip else audio

    def encode_tokens(self, audio: Tensor) -> Tensor:
        """(B, in_channels, T) -> codes (B, n_quantizers, T // ratio), int64.

        Discrete bottlenecks only (rvq, dac_rvq, fsq, ...); VAE variants code their mean."""
        if not self.is_discrete:
            raise ValueError(
                f"encode_tokens needs a discrete bottleneck (rvq, dac_rvq, fsq, ...); "
                f"{type(self.bottleneck).__name__} has continuous latents, use encode()"
            )
        return self.bottleneck.encode_tokens(self.pre_bottleneck(audio))

    def decode_tokens(self, codes: Tensor) -> Tensor:
        """codes (B, n_quantizers, L) -> audio (B, out_channels, L * ratio)."""
        if not self.is_discrete:
            raise ValueError(
                f"decode_tokens needs a discrete bottleneck (rvq, dac_rvq, fsq, ...); "
                f"{type(self.bottleneck).__name__} has continuous latents, use decode()"
            )
        return self.decode(self.bottleneck.decode_tokens(codes))

    @torch.no_grad()
    def data_init(self, audio: Tensor, level: float = 1.0) -> None:
        """Data-dependent initialisation (Salimans & Kingma, 2016) of the encoder's and the
        decoder's weight-normed convs on a batch of training audio (B, data_channels, T): each
        conv's gain and bias are set so that, on this batch, its output has zero mean and unit
        std per channel; the decoder's last conv gives `level` times the target's std instead
        (1: the output starts at the audio's level). The bottleneck's own initialisation
        (`init_std`) is applied again afterwards. Nothing else changes: the same parameters and
        state dict.

        Why (docs/benchmarks.md): with PyTorch's default initialisation an Oobleck decoder's
        output is its biases' constant, and what the latents add to it is 47 dB below that, so
        early training fits the constant and the output stops depending on the input."""
        training = self.training
        self.eval()  # no codebook or other buffer updates from this batch
        try:
            inputs, target = self.inputs_and_targets(audio)
            if self.pretransform is not None:
                inputs = self.pretransform.encode(inputs)
                target = self.pretransform.encode(target)
            data_dependent_init(self.encoder, inputs)
            self.bottleneck.init_encoder_output(self.encoder)
            latents = self.bottleneck.encode(self.encoder(inputs), sample=False).latents
            out_std = level * target.std().item()
            data_dependent_init(self.decoder, self.bottleneck.decode(latents), out_std)
        finally:
            self.train(training)

    def forward(
        self, audio: Tensor, sample: bool = True, freeze_encoder: bool = False
    ) -> tuple[Tensor, BottleneckResult]:
        """Encode and decode. `freeze_encoder` runs the encoder and bottleneck without
        gradients (decoder-only training after warmup)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not freeze_encoder):
            result = self.encode(audio, sample=sample)
        return self.decode(result.latents), result


def convert_channels(audio: Tensor, channels: int) -> Tensor:
    """(..., C, T) -> (..., channels, T): unchanged when C == channels; the channel mean for
    mono; mono repeated to every channel; the first `channels` of a wider signal (as
    stable-audio-tools keeps the first two of a multichannel file). ValueError for
    1 < C < channels, which has no obvious rule."""
    have = audio.shape[-2]
    if have == channels:
        return audio
    if channels == 1:
        return audio.mean(dim=-2, keepdim=True)
    if have == 1:
        return audio.expand(*audio.shape[:-2], channels, audio.shape[-1]).clone()
    if have > channels:
        return audio[..., :channels, :]
    raise ValueError(f"{have} channels cannot be converted to {channels}")


def fit_length(x: Tensor, length: int) -> Tensor:
    """Trim or zero-pad the last dimension of `x` to `length`."""
    if x.shape[-1] >= length:
        return x[..., :length]
    return F.pad(x, (0, length - x.shape[-1]))
