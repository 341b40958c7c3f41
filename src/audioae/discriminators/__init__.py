"""Discriminators, each owning its adversarial objectives (`base.Discriminator`).

encodec: multi-scale STFT (EnCodec), hinge, the default; dac: multi-period + multi-band STFT
(DAC), least squares; oobleck: multi-scale + multi-period waveform convs, hinge.
"""

from audioae.discriminators.base import Discriminator

__all__ = ["Discriminator"]
