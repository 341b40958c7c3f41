"""Multi-resolution STFT loss (Yamamoto et al., 2020, "Parallel WaveGAN"; Steinmetz &
Reiss, 2020, "auraloss"), computed by auraloss.

Mono (or more than two channels): `MultiResolutionSTFTLoss` on every channel.
Stereo: the stable-audio-tools objective `SD + (L + R) / 2`, where SD is the loss of the sum and
difference signals (L+R and L-R without 1/2, as auraloss's `SumAndDifferenceSTFTLoss`) and
L, R the per-channel losses.

`form="sat"` is stable-audio-tools 0.0.20's own loss instead (losses/sat_stft.py: K-weighting,
a tight STFT, symmetric spectral convergence, a level-relative log term), in the same stereo
composition; the converted stable-audio-tools presets use it. The rest of this docstring is
about the default, `form="auraloss"`.

Unlike stable-audio-tools, the reconstruction is passed as auraloss's `input` and the real audio
as its `target`, so spectral convergence is normalised by the target magnitude (the reference
swaps them on purpose, §11.3), and spectral convergence uses one norm over the batch as upstream
auraloss does.
`sc_norm` chooses how (SpectralConvergence): "batch" (this, the default), "crop" (one norm a
crop, so a quiet crop counts as much as a loud one) or "sat" (stable-audio-tools' per-signal ratio
over the reconstruction, which the presets converted from it state). On the real-audio set none
of the three kept the recipe from collapsing, nor changed its mel distance much
(docs/benchmarks.md, 2026-12-07).

Spectral convergence `SC = ||Y - X||_F / ||Y||_F` (target Y, reconstruction X, STFT magnitudes)
is undefined for a silent target, and auraloss's `SumAndDifferenceSTFTLoss` hits that on every
dual-mono batch (mono material stored as stereo: most speech), whose difference L-R is exactly
zero: |Y| is then auraloss's floor sqrt(eps) = 1e-4 in every bin, and a little side noise in the
reconstruction costs thousands. Two changes make it well-defined (the first moves ordinary
stereo values by a few percent, measured below; the second leaves them as they are):

1. Sum and difference share one norm, as the items of a batch do: they go through one
   `MultiResolutionSTFTLoss` call as 2B items, so SC_SD = ||[E_sum; E_diff]|| / ||[Y_sum; Y_diff]||
   instead of (SC_sum + SC_diff) / 2. Per bin |S_L + S_R|^2 + |S_L - S_R|^2 = 2 |S_L|^2 +
   2 |S_R|^2, so the denominator is the stereo energy whatever the image (mono, wide, one-sided),
   and a side error is measured against it, as the per-channel term measures a silent channel
   against the others. The log-magnitude part is the mean over equal halves, so it is unchanged.
2. A floor for an all-silent batch (one norm over the batch dilutes a silent crop, but a batch
   that is all silence, e.g. batch size 1, has nothing to dilute it): the denominator is
   max(||Y||, ||X|| / 2), the reconstruction's norm detached. Silence then costs SC = 2 for any
   non-silent output (the log-magnitude term still grades how loud it is), SC never exceeds 3,
   and the floor acts only when the reconstruction's magnitudes are over twice the target's
   (6 dB), so ordinary values and gradients are bitwise those of auraloss.

Measured with the default config (44.1 kHz, 7 resolutions, A-weighting), 4 crops of 32768
samples of pink noise at 0.1 rms (true stereo: channels 0.5-correlated; near mono: side 40 dB
down), reconstruction = target + white noise at 0.01 rms, independent per channel (a) or side
only, L = +e, R = -e (b); `spec/mrstft` before (auraloss) / after / stable-audio-tools' copy:

    target                      (a) before   after   SAT     (b) before   after   SAT
    true stereo                      0.571   0.562   0.571        0.518   0.519   0.517
    near mono                         9.86    1.99    2.40         13.3    2.10    2.47
    dual mono                          596    3.28    3.70          840    3.39    3.77
    one silent channel                3.27    3.27    3.67         3.15    3.18    3.54
    one silent crop of 4              3.26    3.24    3.66         2.55    2.55    2.84
    all silent (1 or 4 crops)         2040    14.9    12.9         1680    12.3    9.77

Spectral convergence alone, (a): true stereo 0.172 -> 0.164, dual mono 590 -> 0.189, all silent
2016 -> 4.0. What remains above true stereo is the log-magnitude term on a silent target,
mean |log |X| - log 1e-4|, about 6 per bin for noise at this level, and bounded by the dynamic
range (issue 13 measured 2960 before on its own dual-mono batch). Ordinary stereo moves by the
change from (SC_sum + SC_diff) / 2 to one norm: -1.5% (a) and +0.3% (b) above; +4.5% for a wide
image (mid and side equally loud) with (b) (tests/losses/test_spectral.py). The default model at
initialisation outputs 0.32x the target's norm, far from the floor's 2x. Time: forward +
backward on (2, 2, 32768), one CPU thread, 1.12 s before, 1.09 s after (the same STFTs; one
auraloss call for sum and difference instead of two).
"""

from __future__ import annotations

from collections.abc import Sequence

import auraloss
import torch
from torch import Tensor, nn

from audioae.losses.sat_stft import KWeighting, TightMultiResolutionSTFT
from audioae.metrics import mel_distance, min_length

# The all-silent floor: the denominator is at least this fraction of the reconstruction's norm.
_FLOOR = 0.5


class SpectralConvergence(nn.Module):
    """||Y - X||_F / max(||Y||_F, ||X||_F / 2), X's norm detached; replaces auraloss's
    `SpectralConvergenceLoss` (the same value wherever ||Y|| >= ||X|| / 2 in "batch" mode).

    `norm` says over what the norms run (x_mag, y_mag: (N, F, T), N items of `group` consecutive
    signals each: a crop's channels, or its sum and difference):
    - "batch": one norm over the whole batch (upstream auraloss);
    - "crop": one norm a crop (`group` signals), then the mean over crops, so that every crop
      weighs the same whatever its level (a quiet crop beside loud ones is not drowned);
    - "sat": stable-audio-tools' copy: per signal, divided by the reconstruction's norm (§11.3).
    """

    def __init__(self, norm: str = "batch", group: int = 1):
        super().__init__()
        self.norm, self.group = norm, group

    def forward(self, x_mag: Tensor, y_mag: Tensor) -> Tensor:
        if self.norm == "sat":
            dims = (-2, -1)
            return (torch.norm(y_mag - x_mag, dim=dims) / torch.norm(x_mag, dim=dims)).mean()
        rows = 1 if self.norm == "batch" else x_mag.shape[0] // self.group
        x, y = x_mag.reshape(rows, -1), y_mag.reshape(rows, -1)
        floor = _FLOOR * torch.norm(x.detach(), dim=1)
        return (torch.norm(y - x, dim=1) / torch.maximum(torch.norm(y, dim=1), floor)).mean()


def _multi_resolution(args: dict, norm: str, group: int) -> auraloss.freq.MultiResolutionSTFTLoss:
    loss = auraloss.freq.MultiResolutionSTFTLoss(**args)
    for resolution in loss.stft_losses:
        resolution.spectralconv = SpectralConvergence(norm, group)
    return loss


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
        sc_norm: str = "batch",
        form: str = "auraloss",
    ):
        super().__init__()
        if sc_norm not in ("batch", "crop", "sat"):
            raise ValueError(f"sc_norm={sc_norm!r}: expected batch, crop or sat")
        if form not in ("auraloss", "sat"):
            raise ValueError(f"form={form!r}: expected auraloss or sat")
        self.channels = channels
        if form == "sat":
            if w_phs or scale is not None or scale_invariance or sc_norm != "batch":
                raise ValueError(
                    "form=sat takes no w_phs, scale, scale_invariance or sc_norm (they belong "
                    "to form=auraloss)"
                )
            self._sat_form(sample_rate, fft_sizes, hop_sizes, w_sc, w_log_mag, w_lin_mag, eps)
            self.prefilter = KWeighting(sample_rate) if perceptual_weighting else None
            return
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
        self.per_channel = _multi_resolution(args, sc_norm, channels)
        self.sum_diff = _multi_resolution(args, sc_norm, 2) if channels == 2 else None

    def _sat_form(self, sample_rate, fft_sizes, hop_sizes, w_sc, w_log_mag, w_lin_mag, eps):
        """stable-audio-tools 0.0.20's loss (losses/sat_stft.py): the same stereo composition,
        with its per-signal terms, tight STFT and K-weighting."""
        self.min_length = max(fft_sizes)  # no centring: one frame needs n_fft samples
        self.per_channel = TightMultiResolutionSTFT(
            fft_sizes, hop_sizes, w_sc, w_log_mag, w_lin_mag, eps
        )
        self.sum_diff = self.per_channel if self.channels == 2 else None

    def forward(self, recon: Tensor, real: Tensor) -> dict[str, Tensor]:
        b, c, t = real.shape
        # Channels fold into the batch: the mean over channels of the per-channel loss.
        recon, real = recon.reshape(b * c, 1, t), real.reshape(b * c, 1, t)
        if self.prefilter is not None:
            recon, real = self.prefilter(recon, real)
        loss = self.per_channel(recon, real)
        if self.sum_diff is not None:
            # (2B, 1, T): each crop's sum, then its difference, one batch for auraloss
            recon, real = (
                torch.cat(_sum_and_difference(x.reshape(b, c, t)), dim=1).reshape(2 * b, 1, t)
                for x in (recon, real)
            )
            loss = loss + self.sum_diff(recon, real)
        return {"spec/mrstft": loss}


def _sum_and_difference(x: Tensor) -> tuple[Tensor, Tensor]:
    """(B, 2, T) -> L + R, L - R, each (B, 1, T) (auraloss's SumAndDifference)."""
    return auraloss.perceptual.SumAndDifference()(x)


# descript-audio-codec's training loss (conf/base.yml: MelSpectrogramLoss.*, weight 15 there).
DAC_TRAIN_N_MELS = (5, 10, 20, 40, 80, 160, 320)
DAC_TRAIN_WINDOWS = (32, 64, 128, 256, 512, 1024, 2048)


class MultiScaleMel(nn.Module):
    """descript-audio-codec's multi-scale mel loss (Kumar et al., 2023), as it trains with it:
    `dac.nn.loss.MelSpectrogramLoss` with n_mels 5..320 over windows 32..2048 (hop window / 4),
    L1 of log10(max(mel, 1e-5)) (pow 1, no linear-magnitude term), summed over the scales.
    `forward(recon, real)` on (B, C, T) -> {"spec/mel": scalar}; channels fold into the batch,
    as dac's loss does, so dual-mono audio is as well-defined as any other.

    Beside the STFT loss it weights the spectrum by mel bands: at 44.1 kHz the 0-1000 Hz that
    carry most of music's energy are 47 of a 2048-point STFT's 1025 bins (5%) but 37 of 150 mel
    bands (25%); runs on the STFT loss alone ended with music's bass 40 dB low
    (docs/benchmarks.md)."""

    names = ("spec/mel",)

    def __init__(
        self,
        sample_rate: int,
        n_mels: Sequence[int] = DAC_TRAIN_N_MELS,
        window_lengths: Sequence[int] = DAC_TRAIN_WINDOWS,
        clamp_eps: float = 1e-5,
        pow: float = 1.0,
        mag_weight: float = 0.0,
    ):
        super().__init__()
        if len(n_mels) != len(window_lengths):
            raise ValueError(
                f"loss.terms.mel: n_mels {list(n_mels)} and window_lengths "
                f"{list(window_lengths)} differ in length"
            )
        self.sample_rate, self.n_mels, self.windows = (
            sample_rate,
            tuple(n_mels),
            tuple(window_lengths),
        )
        self.clamp_eps, self.pow, self.mag_weight = clamp_eps, pow, mag_weight
        self.min_length = min_length(window_lengths)

    def forward(self, recon: Tensor, real: Tensor) -> dict[str, Tensor]:
        loss = mel_distance(
            recon,
            real,
            self.sample_rate,
            self.n_mels,
            self.windows,
            self.clamp_eps,
            self.pow,
            mag_weight=self.mag_weight,
        )
        return {"spec/mel": loss}
