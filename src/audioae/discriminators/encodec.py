"""Multi-scale STFT discriminator (MS-STFTD) of EnCodec, from the encodec package.

Défossez et al., "High Fidelity Neural Audio Compression", 2022 (arXiv:2210.13438), section 3.4.
Each scale takes the complex STFT (real and imaginary parts of every channel stacked as 2C
input channels, time x frequency) through weight-normed 2D convs with LeakyReLU; its feature
maps are the post-activation outputs of the 2 + len(dilations) convs and its logits the output
of `conv_post`. This is the stable-audio-tools `encodec` discriminator (hinge loss by default).

Differences from stable-audio-tools v0.0.19 (which vendors a modified copy):
- `stride` defaults to (1, 2) as in the encodec package and older stable-audio-tools, which the
  Stable Audio Open VAE was trained with. The reference switched to (1, 1): no frequency
  downsampling inside the conv stack, several times the activation memory. Set
  `stride: [1, 1]` (and `weight_norm_first: true`) for the reference's network.
- The encodec package leaves the first conv without weight norm (`convs.0.conv.weight`); the
  reference weight-normalises it too (`convs.0.conv.weight_g/weight_v`). `weight_norm_first`
  adds it. All other keys match: under the training wrapper's `discriminator` attribute they
  read `discriminator.discriminators.discriminators.{i}.convs.{j}.conv.{weight_g,weight_v,bias}`,
  `...conv_post.conv.*` and `...spec_transform.window`, as in the reference.
- No `spec_scale_pow` (the reference's default 0.0 is a no-op); no `normalize_losses`.
- Gradient checkpointing is off by default and, when on, recomputes a whole scale rather
  than every conv (the reference always checkpoints every conv, even in eval).
- Feature matching detaches the real features (the reference does not, §11.7).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

from encodec.msstftd import MultiScaleSTFTDiscriminator
from torch import Tensor, nn

from audioae.discriminators.base import (
    DiscOutput,
    Discriminator,
    channels_last_convs,
    maybe_checkpoint,
)


class EncodecDiscriminator(Discriminator):
    """(B, in_channels, T) -> per scale: logits (B, 1, frames', freqs') and 2 + len(dilations)
    feature maps (B, filters * filters_scale**k capped at max_filters, frames', freqs').

    n_ffts, hop_lengths, win_lengths: one STFT per scale (equal lengths).
    stride: (time, frequency) stride of the dilated convs; (1, 2) halves the frequency axis at
        each of them, (1, 1) is stable-audio-tools v0.0.19's (much more memory).
    activation_params: None means {"negative_slope": 0.2} for LeakyReLU, {} otherwise.
    weight_norm_first: weight-normalise the first conv as stable-audio-tools does.
    checkpointing: recompute each scale in the backward pass (memory for compute).
    channels_last: compute the 2D convs in NHWC layout (faster on CPUs, same values).
    """

    def __init__(
        self,
        in_channels: int,
        filters: int = 32,
        n_ffts: Sequence[int] = (2048, 1024, 512, 256, 128),
        hop_lengths: Sequence[int] = (512, 256, 128, 64, 32),
        win_lengths: Sequence[int] = (2048, 1024, 512, 256, 128),
        max_filters: int = 1024,
        filters_scale: int = 1,
        kernel_size: Sequence[int] = (3, 9),
        dilations: Sequence[int] = (1, 2, 4),
        stride: Sequence[int] = (1, 2),
        normalized: bool = True,
        activation: str = "LeakyReLU",
        activation_params: Mapping[str, float] | None = None,
        weight_norm_first: bool = False,
        loss: str = "hinge",
        checkpointing: bool = False,
        channels_last: bool = True,
    ):
        super().__init__(loss)
        if not len(n_ffts) == len(hop_lengths) == len(win_lengths):
            raise ValueError(
                "discriminator.n_ffts, hop_lengths and win_lengths need equal lengths, got "
                f"{len(n_ffts)}, {len(hop_lengths)}, {len(win_lengths)}"
            )
        if activation_params is None:
            activation_params = {"negative_slope": 0.2} if activation == "LeakyReLU" else {}
        self.checkpointing = checkpointing
        self.min_length = max(n_ffts)  # un-centred STFT: one frame needs n_fft samples
        # Named `discriminators` so keys read like the reference's (see module docstring).
        self.discriminators = MultiScaleSTFTDiscriminator(
            filters=filters,
            in_channels=in_channels,
            out_channels=1,
            n_ffts=list(n_ffts),
            hop_lengths=list(hop_lengths),
            win_lengths=list(win_lengths),
            max_filters=max_filters,
            filters_scale=filters_scale,
            kernel_size=tuple(kernel_size),
            dilations=list(dilations),
            stride=tuple(stride),
            normalized=normalized,
            norm="weight_norm",
            activation=activation,
            activation_params=dict(activation_params),
        )
        if weight_norm_first:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                for disc in self.discriminators.discriminators:
                    disc.convs[0].conv = nn.utils.weight_norm(disc.convs[0].conv)
        if channels_last:
            channels_last_convs(self)

    def forward(self, x: Tensor) -> DiscOutput:
        # The STFT runs in float32 (no half-precision FFT); the convs follow any autocast.
        x = x.float()
        return [
            maybe_checkpoint(disc, x, self.checkpointing)
            for disc in self.discriminators.discriminators
        ]
