"""stable-audio-tools 0.0.20's multi-resolution STFT loss (its `training/losses/auraloss.py`,
a modified copy of auraloss), for `MultiResolutionSTFT(form="sat")`.

It departs from auraloss 0.4 in four places, each reproduced here:

1. Perceptual weighting is a K-weighting FIR (ITU-R BS.1770's two stages: a 38 Hz high-pass and
   a +4 dB shelf above 1.7 kHz), designed as 257 linear-phase taps with unit gain at 1 kHz and
   applied with reflect padding, instead of auraloss's A-weighting.
2. The STFT is "tight": a power-sine window sin^p(pi n / N) with p = N / hop - 1, scaled so the
   overlapped squared windows sum to 1, torch's normalised one-sided STFT without centring,
   and sqrt(2) on the bins between DC and Nyquist, so the magnitudes keep the signal's energy.
   `win_lengths` and `window` are not used.
3. Spectral convergence is symmetric: ||Y - X||_F / max(||Y + X||_F, 1e-4), per signal.
4. The log-magnitude term compares log(1 + |X| / s) with s = sqrt(max(std |X|, 1e-4)^2 +
   max(std |Y|, 1e-4)^2) per signal (detached): a level-relative compression instead of log |X|.

Every term is a mean over signals, so the order of reconstruction and target does not matter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F
from torch import Tensor, nn

SC_FLOOR = 1e-4  # the denominator's floor of spectral convergence
STD_FLOOR = 1e-4  # the floor of each magnitude std in the log term's offset


def k_weighting_taps(sample_rate: float, taps: int = 257, ref_hz: float = 1000.0) -> np.ndarray:
    """The K-weighting FIR: the analog prototype through the bilinear transform, fitted by
    firwin2 on 8193 frequencies, normalised to unit gain at `ref_hz`."""
    w_hp = 2 * np.pi * 38.135
    hp_num, hp_den = [1.0, 0.0, 0.0], [1.0, w_hp / 0.5, w_hp**2]
    gain, w_s, q = 10 ** (4.0 / 20), 2 * np.pi * 1681.974, 1.69
    shelf_num, shelf_den = [gain, gain * w_s / q, w_s**2], [1.0, w_s / q, w_s**2]
    b, a = scipy.signal.bilinear(
        np.polymul(hp_num, shelf_num), np.polymul(hp_den, shelf_den), fs=sample_rate
    )
    freq = np.linspace(0.0, sample_rate / 2, 8193)
    _, response = scipy.signal.freqz(b, a, worN=freq, fs=sample_rate)
    fir = scipy.signal.firwin2(taps, freq, np.abs(response), fs=sample_rate)
    w = 2 * np.pi * ref_hz / sample_rate
    return fir / np.abs(np.sum(fir * np.exp(-1j * w * np.arange(taps))))


class KWeighting(nn.Module):
    """The K-weighting FIR, reflect-padded to keep the length; `forward(input, target)` filters
    both, as auraloss's FIRFilter, which it replaces in `MultiResolutionSTFT(form="sat")`."""

    def __init__(self, sample_rate: float):
        super().__init__()
        kernel = torch.from_numpy(k_weighting_taps(sample_rate).astype(np.float32))
        self.register_buffer("kernel", kernel.view(1, 1, -1), persistent=False)

    def forward(self, input: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        return self.filter(input), self.filter(target)

    def filter(self, x: Tensor) -> Tensor:
        """(N, C, T) -> (N, C, T)."""
        n, c, t = x.shape
        pad = (self.kernel.shape[-1] - 1) // 2
        x = F.pad(x.reshape(n * c, 1, t), (pad, pad), mode="reflect")
        return F.conv1d(x, self.kernel.to(x.dtype)).reshape(n, c, t)


def tight_window(n_fft: int, hop: int) -> Tensor:
    """sin^p(pi n / N), p = N / hop - 1, scaled so that the squared windows overlapped at `hop`
    sum to 1 (the mean of sin^2p over a period is C(2p, p) / 4^p)."""
    overlap = n_fft // hop
    p = overlap - 1
    if overlap < 2:
        raise ValueError(f"fft size {n_fft} with hop {hop}: the hop must be at most half the fft")
    scale = 1.0 / math.sqrt(overlap * math.comb(2 * p, p) / 4.0**p)
    return torch.sin(math.pi * torch.arange(n_fft) / n_fft) ** p * scale


def tight_magnitude(x: Tensor, n_fft: int, hop: int, eps: float) -> Tensor:
    """(N, T) -> (N, n_fft // 2 + 1, frames): energy-preserving one-sided STFT magnitudes."""
    spec = torch.stft(
        x,
        n_fft,
        hop_length=hop,
        win_length=n_fft,
        window=tight_window(n_fft, hop).to(x.device, x.dtype),
        center=False,
        normalized=True,
        onesided=True,
        return_complex=True,
    )
    hermitian = torch.full((n_fft // 2 + 1, 1), math.sqrt(2.0), device=x.device, dtype=x.dtype)
    hermitian[0] = hermitian[-1] = 1.0
    return torch.clamp((spec * hermitian).abs(), min=eps)


def resolution_loss(
    x_mag: Tensor, y_mag: Tensor, w_sc: float, w_log_mag: float, w_lin_mag: float
) -> Tensor:
    """One resolution's loss on (N, F, T) magnitudes, a mean over the N signals."""
    loss = x_mag.new_zeros(())
    if w_sc:
        dims = (-2, -1)
        ratio = torch.norm(y_mag - x_mag, dim=dims) / torch.norm(x_mag + y_mag, dim=dims).clamp(
            min=SC_FLOOR
        )
        loss = loss + w_sc * ratio.mean()
    if w_log_mag or w_lin_mag:
        dims = (-2, -1)
        offset = torch.sqrt(
            x_mag.std(dim=dims, keepdim=True).detach().clamp(min=STD_FLOOR) ** 2
            + y_mag.std(dim=dims, keepdim=True).detach().clamp(min=STD_FLOOR) ** 2
        )
        if w_log_mag:
            log_x, log_y = torch.log(x_mag / offset + 1), torch.log(y_mag / offset + 1)
            loss = loss + w_log_mag * F.l1_loss(log_x, log_y)
        if w_lin_mag:  # its linear term shares the magnitude loss class, offset unused
            loss = loss + w_lin_mag * F.l1_loss(x_mag, y_mag)
    return loss


class TightMultiResolutionSTFT(nn.Module):
    """`forward(x, y)` on (N, 1, T) signals -> the mean over resolutions of `resolution_loss`
    (stable-audio-tools 0.0.20's MultiResolutionSTFTLoss with its defaults)."""

    def __init__(
        self,
        fft_sizes: Sequence[int],
        hop_sizes: Sequence[int],
        w_sc: float = 1.0,
        w_log_mag: float = 1.0,
        w_lin_mag: float = 0.0,
        eps: float = 1e-8,
    ):
        super().__init__()
        for n_fft, hop in zip(fft_sizes, hop_sizes, strict=True):
            if n_fft % 2 or n_fft // hop < 2:
                raise ValueError(
                    f"loss.terms.spectral: fft size {n_fft} with hop {hop}: form=sat needs even "
                    "fft sizes and hops of at most half of them"
                )
        self.resolutions = list(zip(fft_sizes, hop_sizes))
        self.weights = (w_sc, w_log_mag, w_lin_mag)
        self.eps = eps

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        total = x.new_zeros(())
        for n_fft, hop in self.resolutions:
            x_mag = tight_magnitude(x, n_fft, hop, self.eps)
            y_mag = tight_magnitude(y, n_fft, hop, self.eps)
            total = total + resolution_loss(x_mag, y_mag, *self.weights)
        return total / len(self.resolutions)
