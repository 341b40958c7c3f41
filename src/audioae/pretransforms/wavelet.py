"""Multi-level discrete wavelet transform (Mallat, "A theory for multiresolution signal
decomposition", IEEE TPAMI 1989) with biorthogonal spline wavelets (Cohen, Daubechies &
Feauveau, "Biorthogonal bases of compactly supported wavelets", CPAM 1992).

Each level splits the current low band into low and high halves at half the rate; bands that are
already split are only re-arranged (polyphase) so that every channel ends at T / 2^levels:

    (B, C, T) -> (B, C * 2^levels, T / 2^levels)    and back, perfectly.

Boundaries use whole-sample symmetric extension. With odd-length symmetric filters the interleaved
subbands [lo0, hi0, lo1, hi1, ...] inherit the input's symmetry, so the synthesis extends them the
same way and reconstruction is exact at the edges too (up to float rounding), for any even length.

Channel layout, filter tables and buffer names follow stable-audio-tools (`encoder.kernel`,
`decoder.kernel` of shape (2C, C, K)), so its wavelet-pretransform checkpoints load strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audioae.errors import ConfigError
from audioae.pretransforms.base import Pretransform

# PyWavelets' decomposition and reconstruction low-pass filters (`pywt.Wavelet(name).dec_lo`,
# `.rec_lo`; its C table `wavelets_coeffs`), without their leading zero (all four filters of these
# wavelets start with one). The high-pass filters follow from the biorthogonal relations, in
# PyWavelets' indexing (leading zero included): dec_hi[n] = (-1)^(n+1) rec_lo[n],
# rec_hi[n] = (-1)^n dec_lo[n].
_LOWPASS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "bior2.2": (
        (-0.17677669529663689, 0.35355339059327379, 1.0606601717798214, 0.35355339059327379,
         -0.17677669529663689),
        (0.35355339059327379, 0.70710678118654757, 0.35355339059327379, 0.0, 0.0),
    ),
    "bior2.4": (
        (0.033145630368119419, -0.066291260736238838, -0.17677669529663689, 0.4198446513295126,
         0.99436891104358249, 0.4198446513295126, -0.17677669529663689, -0.066291260736238838,
         0.033145630368119419),
        (0.0, 0.0, 0.35355339059327379, 0.70710678118654757, 0.35355339059327379, 0.0, 0.0, 0.0,
         0.0),
    ),
    "bior2.6": (
        (-0.0069053396600248784, 0.013810679320049757, 0.046956309688169176,
         -0.10772329869638811, -0.16987135563661201, 0.44746600996961211, 0.96674755240348298,
         0.44746600996961211, -0.16987135563661201, -0.10772329869638811, 0.046956309688169176,
         0.013810679320049757, -0.0069053396600248784),
        (0.0, 0.0, 0.0, 0.0, 0.35355339059327379, 0.70710678118654757, 0.35355339059327379, 0.0,
         0.0, 0.0, 0.0, 0.0, 0.0),
    ),
    "bior2.8": (
        (0.0015105430506304422, -0.0030210861012608843, -0.012947511862546647,
         0.028916109826354178, 0.052998481890690945, -0.13491307360773608, -0.16382918343409025,
         0.46257144047591658, 0.95164212189717856, 0.46257144047591658, -0.16382918343409025,
         -0.13491307360773608, 0.052998481890690945, 0.028916109826354178, -0.012947511862546647,
         -0.0030210861012608843, 0.0015105430506304422),
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.35355339059327379, 0.70710678118654757,
         0.35355339059327379, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    ),
    "bior4.4": (
        (0.03782845550726404, -0.023849465019556843, -0.11062440441843718, 0.37740285561283066,
         0.85269867900889385, 0.37740285561283066, -0.11062440441843718, -0.023849465019556843,
         0.03782845550726404),
        (-0.064538882628697058, -0.040689417609164058, 0.41809227322161724, 0.7884856164055829,
         0.41809227322161724, -0.040689417609164058, -0.064538882628697058, 0.0, 0.0),
    ),
    "bior6.8": (
        (0.0019088317364812906, -0.0019142861290887667, -0.016990639867602342,
         0.01193456527972926, 0.04973290349094079, -0.077263173167204144, -0.09405920349573646,
         0.42079628460982682, 0.82592299745840225, 0.42079628460982682, -0.09405920349573646,
         -0.077263173167204144, 0.04973290349094079, 0.01193456527972926, -0.016990639867602342,
         -0.0019142861290887667, 0.0019088317364812906),
        (0.0, 0.0, 0.014426282505624435, 0.014467504896790148, -0.078722001062628819,
         -0.040367979030339923, 0.41784910915027457, 0.75890772945365415, 0.41784910915027457,
         -0.040367979030339923, -0.078722001062628819, 0.014467504896790148,
         0.014426282505624435, 0.0, 0.0, 0.0, 0.0),
    ),
}  # fmt: skip

WAVELETS = tuple(_LOWPASS)


def filter_bank(wavelet: str) -> Tensor:
    """(4, K) float64: dec_lo, dec_hi, rec_lo, rec_hi, PyWavelets' values minus the leading zero."""
    if wavelet not in _LOWPASS:
        raise ConfigError(f"pretransform.wavelet={wavelet!r}: choose one of {', '.join(WAVELETS)}")
    dec_lo, rec_lo = (torch.tensor((0.0, *f), dtype=torch.float64) for f in _LOWPASS[wavelet])
    sign = (-1.0) ** torch.arange(len(dec_lo), dtype=torch.float64)
    bank = torch.stack([dec_lo, -sign * rec_lo, rec_lo, sign * dec_lo])
    return bank[:, 1:]


def symmetric_pad(x: Tensor, left: int, right: int) -> Tensor:
    """Whole-sample symmetric extension of the last dim (like F.pad 'reflect', any pad length)."""
    n = x.shape[-1]
    if left < n and right < n:
        return F.pad(x, (left, right), mode="reflect")
    idx = torch.arange(-left, n + right, device=x.device)
    if n == 1:
        idx = torch.zeros_like(idx)
    else:
        idx = idx.abs() % (2 * n - 2)
        idx = torch.where(idx >= n, 2 * n - 2 - idx, idx)
    return x.index_select(-1, idx)


class _Kernel(nn.Module):
    """Holds a (2C, C, K) filter as the buffer `kernel` (stable-audio-tools' state-dict name)."""

    def __init__(self, kernel: Tensor):
        super().__init__()
        self.register_buffer("kernel", kernel)


def _per_channel(filters: Tensor, channels: int) -> Tensor:
    """(2, K) -> (2C, C, K): output channel i*C + j applies filters[i] to input channel j."""
    kernel = torch.zeros(2 * channels, channels, filters.shape[-1], dtype=torch.float32)
    for i in range(2):
        for j in range(channels):
            kernel[i * channels + j, j] = filters[i]
    return kernel


class Wavelet(Pretransform):
    """(B, channels, T) -> (B, channels * 2^levels, T / 2^levels); decode inverts it exactly.

    Output channels: the lowest band first, then the higher bands, each re-arranged per level as
    stable-audio-tools does. T must be a multiple of 2^levels.
    """

    def __init__(
        self,
        channels: int,
        levels: int = 3,
        wavelet: str = "bior4.4",
        enable_grad: bool = False,
    ):
        super().__init__(enable_grad)
        if levels < 1:
            raise ConfigError(f"pretransform.levels={levels}: need at least one level")
        bank = filter_bank(wavelet)
        self.channels, self.levels, self.wavelet = int(channels), int(levels), wavelet
        self.io_channels = self.channels
        self.encoded_channels = self.channels * 2**self.levels
        self.downsampling_ratio = 2**self.levels
        # conv1d correlates, so the analysis filters are flipped; conv_transpose1d convolves.
        self.encoder = _Kernel(_per_channel(bank[:2].flip(-1), self.channels))
        self.decoder = _Kernel(_per_channel(bank[2:], self.channels))

    @property
    def _half(self) -> int:
        return self.encoder.kernel.shape[-1] // 2

    def _analysis(self, x: Tensor) -> Tensor:
        """(B, C, T) -> (B, 2C, T/2): [low of each channel, high of each channel]."""
        p = self._half
        return F.conv1d(symmetric_pad(x, p, p), self.encoder.kernel.to(x.dtype), stride=2)

    def _synthesis(self, bands: Tensor) -> Tensor:
        """(B, 2C, L) -> (B, C, 2L), the inverse of `_analysis`."""
        b, _, n = bands.shape
        c, p = self.channels, self._half
        # Interleave [lo0, hi0, lo1, ...] (each band sample at its centre), extend symmetrically,
        # split again. An even extension keeps lows on even positions.
        inter = bands.view(b, 2, c, n).permute(0, 2, 3, 1).reshape(b, c, 2 * n)
        ext = p + 1 + (p + 1) % 2
        inter = symmetric_pad(inter, ext, ext)
        split = inter.view(b, c, n + ext, 2).permute(0, 3, 1, 2).reshape(b, 2 * c, n + ext)
        kernel = self.decoder.kernel.to(bands.dtype)
        out = F.conv_transpose1d(split, kernel, stride=2, padding=p - 1)
        return out[..., ext : ext + 2 * n]

    def encode(self, audio: Tensor) -> Tensor:
        b, c, t = audio.shape
        if c != self.channels or t % self.downsampling_ratio:
            raise ValueError(
                f"wavelet pretransform expects (batch, {self.channels}, a multiple of "
                f"{self.downsampling_ratio}) samples, got {tuple(audio.shape)}"
            )
        x = audio
        for _ in range(self.levels):
            low, rest = x[:, : self.channels], x[:, self.channels :]
            n = rest.shape[-1] // 2
            groups = rest.shape[1] // self.channels
            # already-split bands: (group, channel, time, phase) -> (group, phase, channel, time)
            rest = rest.reshape(b, groups, self.channels, n, 2).permute(0, 1, 4, 2, 3)
            x = torch.cat([self._analysis(low), rest.reshape(b, -1, n)], dim=1)
        return x

    def decode(self, x: Tensor) -> Tensor:
        b, c, n = x.shape
        if c != self.encoded_channels:
            raise ValueError(
                f"wavelet pretransform decodes (batch, {self.encoded_channels}, time), "
                f"got {tuple(x.shape)}"
            )
        for _ in range(self.levels):
            low, rest = x[:, : 2 * self.channels], x[:, 2 * self.channels :]
            groups = rest.shape[1] // (2 * self.channels)
            rest = rest.reshape(b, groups, 2, self.channels, n).permute(0, 1, 3, 4, 2)
            x = torch.cat([self._synthesis(low), rest.reshape(b, -1, 2 * n)], dim=1)
            n *= 2
        return x
