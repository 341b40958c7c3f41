"""The discriminator of the Descript Audio Codec, from the descript-audio-codec package.

Kumar et al., "High-Fidelity Audio Compression with Improved RVQGAN", NeurIPS 2023
(arXiv:2306.06546): a multi-period discriminator (MPD, HiFi-GAN's), an optional multi-scale
waveform discriminator (MSD, MelGAN's) and a multi-band complex-STFT discriminator (MRD),
trained with least squares. The package's `dac.model.discriminator.Discriminator` removes each
signal's DC offset and peak-normalises it to 0.8 (y / (max|y| + 1e-9)) before its
sub-discriminators, as stable-audio-tools' `dac` option does.

Each sub-discriminator returns a list of feature maps; as in DAC and the reference, the last one
is the logits and the others are the feature maps for feature matching.

Differences from stable-audio-tools (`DACGANLoss`, a modified copy):
- The package is mono, so channels are folded into the batch: every logit and feature map has
  B * channels rows. The reference does that in the MRD too, but feeds all channels at once
  to the MPD and MSD; for mono the networks and their keys are the same
  (`discriminator.discriminators.{i}...` under the wrapper's attribute).
- `rates` works (the reference forgets to import AudioSignal, §11.19). Each rate r is a
  downsampling factor: the MSD runs on the signal resampled to sample_rate // r.
- Only the least-squares and the standard hinge objectives (`loss`); the reference's hinge
  variant uses relu(D(fake)) instead of relu(1 + D(fake)) (§11.7).
- Gradient checkpointing is off by default (the reference always checkpoints).
"""

from __future__ import annotations

from collections.abc import Sequence

from dac.model.discriminator import BANDS
from dac.model.discriminator import Discriminator as DACPackageDiscriminator
from torch import Tensor

from audioae.discriminators.base import DiscOutput, Discriminator, maybe_checkpoint
from audioae.errors import ConfigError


class DACDiscriminator(Discriminator):
    """(B, channels, T) -> per sub-discriminator: logits and feature maps with B * channels rows.

    Sub-discriminators, in order: one MPD per period (logits (B*C, 1, T/p', p), 5 feature
    maps), one MSD per rate (6), one MRD per FFT size (5 per band).
    bands: frequency bands of the MRD as fractions of the Nyquist range, [(lo, hi), ...].
    checkpointing: recompute each sub-discriminator in the backward pass.
    """

    def __init__(
        self,
        channels: int,
        sample_rate: int,
        rates: Sequence[int] = (),
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        fft_sizes: Sequence[int] = (2048, 1024, 512),
        bands: Sequence[Sequence[float]] = tuple(BANDS),
        loss: str = "lsgan",
        checkpointing: bool = False,
    ):
        super().__init__(loss)
        for r in rates:
            if int(r) != r or r < 1 or sample_rate % r:
                raise ConfigError(
                    f"discriminator.rates entries are downsampling factors dividing "
                    f"sample_rate={sample_rate}; got {r}"
                )
        for lo, hi in bands:
            if not 0 <= lo < hi <= 1:
                raise ConfigError(
                    f"discriminator.bands entries are [lo, hi] with 0 <= lo < hi <= 1; got "
                    f"[{lo}, {hi}]"
                )
        if not (periods or rates or fft_sizes):
            raise ConfigError("discriminator: periods, rates and fft_sizes are all empty")
        self.channels = channels
        self.checkpointing = checkpointing
        self.min_length = max(fft_sizes, default=0)  # STFT windows of the band discriminator
        self.discriminator = DACPackageDiscriminator(
            rates=[int(r) for r in rates],
            periods=list(periods),
            fft_sizes=list(fft_sizes),
            sample_rate=sample_rate,
            bands=[(float(lo), float(hi)) for lo, hi in bands],
        )

    def forward(self, x: Tensor) -> DiscOutput:
        b, c, t = x.shape
        # float32: the MRD's STFT has no half-precision path; the convs follow any autocast.
        x = self.discriminator.preprocess(x.float().reshape(b * c, 1, t))
        outputs = []
        for disc in self.discriminator.discriminators:
            fmaps = maybe_checkpoint(disc, x, self.checkpointing)
            outputs.append((fmaps[-1], fmaps[:-1]))
        return outputs
