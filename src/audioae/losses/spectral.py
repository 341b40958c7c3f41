"""Multi-resolution STFT loss (Yamamoto et al., 2020, "Parallel WaveGAN"; Steinmetz &
Reiss, 2020, "auraloss"), computed by auraloss.

Mono (or more than two channels): `MultiResolutionSTFTLoss` on every channel.
Stereo: the stable-audio-tools objective `SD + (L + R) / 2`, where SD is auraloss's
`SumAndDifferenceSTFTLoss` (L+R and L-R without 1/2) and L, R the per-channel losses.

Unlike stable-audio-tools, the reconstruction is passed as auraloss's `input` and the real audio
as its `target`, so spectral convergence is normalised by the target magnitude (the reference
swaps them on purpose, §11.3), and spectral convergence uses one norm over the batch as upstream
auraloss does.

Perceptual weighting is auraloss's A-weighting FIR filter, applied once per call to the
channels of both signals. auraloss's own losses apply it inside every resolution's loss, 2 x 7
times per stereo call for the same result (the filter is linear, so filtering L and R also
filters L+R and L-R): a third of the time, same values up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import auraloss
from torch import Tensor, nn


class MultiResolutionSTFT(nn.Module):
    """`forward(recon, real)` on (B, channels, T) -> {"spec/mrstft": scalar}."""

    names = ("spec/mrstft",)

    def __init__(
        self,
        sample_rate: int,
        channels: int,
        fft_sizes: Sequence[int] = (2048, 1024, 512, 256, 128, 64, 32),
        hop_sizes: Sequence[int] = (512, 256, 128, 64, 32, 16, 8),
        win_lengths: Sequence[int] = (2048, 1024, 512, 256, 128, 64, 32),
        window: str = "hann_window",
        w_sc: float = 1.0,
        w_log_mag: float = 1.0,
        w_lin_mag: float = 0.0,
        w_phs: float = 0.0,
        perceptual_weighting: bool = True,
        scale: str | None = None,
        n_bins: int | None = None,
        scale_invariance: bool = False,
        eps: float = 1e-8,
    ):
        super().__init__()
        self.channels = channels
        # torch.stft reflect-pads by n_fft // 2, which needs a longer input
        self.min_length = max(fft_sizes) // 2 + 1
        args = dict(
            fft_sizes=list(fft_sizes),
            hop_sizes=list(hop_sizes),
            win_lengths=list(win_lengths),
            window=window,
            w_sc=w_sc,
            w_log_mag=w_log_mag,
            w_lin_mag=w_lin_mag,
            w_phs=w_phs,
            sample_rate=sample_rate,
            perceptual_weighting=False,  # applied once in forward()
            scale=scale,
            n_bins=n_bins,
            scale_invariance=scale_invariance,
            eps=eps,
        )
        self.prefilter = (
            auraloss.perceptual.FIRFilter(filter_type="aw", fs=sample_rate)
            if perceptual_weighting
            else None
        )
        self.per_channel = auraloss.freq.MultiResolutionSTFTLoss(**args)
        self.sum_diff = auraloss.freq.SumAndDifferenceSTFTLoss(**args) if channels == 2 else None

    def forward(self, recon: Tensor, real: Tensor) -> dict[str, Tensor]:
        b, c, t = real.shape
        # Channels fold into the batch: the mean over channels of the per-channel loss.
        recon, real = recon.reshape(b * c, 1, t), real.reshape(b * c, 1, t)
        if self.prefilter is not None:
            recon, real = self.prefilter(recon, real)
        loss = self.per_channel(recon, real)
        if self.sum_diff is not None:
            loss = loss + self.sum_diff(recon.reshape(b, c, t), real.reshape(b, c, t))
        return {"spec/mrstft": loss}
