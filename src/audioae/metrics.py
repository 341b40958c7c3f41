"""Reconstruction metrics as the codec literature reports them.

- SI-SDR: Le Roux et al., 2019, "SDR — half-baked or well done?", computed by torchmetrics.
- Mel and multi-scale STFT distances: the evaluation of descript-audio-codec (Kumar et al., 2023,
  "High-Fidelity Audio Compression with Improved RVQGAN", `scripts/evaluate.py`), which calls
  `dac.nn.loss.MelSpectrogramLoss()` and `MultiScaleSTFTLoss()` with their default settings on
  audiotools `AudioSignal`s. They are reimplemented here in plain torch (no AudioSignal, whose
  STFT settings hide in a property setter) and tested for equality with dac's classes.
- ViSQOL (Chinen et al., 2020, "ViSQOL v3"), optional, through the `visqol-python` package.
- `lowpass`: a reference degradation (band limitation) that gives the numbers a scale.

All functions take an estimate and a reference of equal shape, (B, C, T) or (C, T), and return a
scalar tensor: the mean over items and channels, as dac's losses (which fold channels into the
batch) do; call them per item for per-item values. SI-SDR alone is misleading (a silent estimate
scores 0 dB, better than many real reconstructions), so report it next to the distances.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchaudio.functional import melscale_fbanks, resample
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

# descript-audio-codec's evaluation settings (the defaults of its loss classes).
DAC_WINDOW_LENGTHS = (2048, 512)
DAC_N_MELS = (150, 80)
DAC_CLAMP_EPS = 1e-5
DAC_POW = 2.0


def _check(est: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
    """Both as (B, C, T)."""
    if est.shape != ref.shape or est.dim() not in (2, 3):
        raise ValueError(
            f"expected estimate and reference of one shape (B, C, T) or (C, T); "
            f"got {tuple(est.shape)} and {tuple(ref.shape)}"
        )
    return (est[None], ref[None]) if est.dim() == 2 else (est, ref)


def min_length(window_lengths: Sequence[int] = DAC_WINDOW_LENGTHS) -> int:
    """Shortest signal the spectral distances accept: the centred STFT reflect-pads
    `window // 2` samples on each side, which needs more samples than that."""
    return max(window_lengths) // 2 + 1


def si_sdr(est: Tensor, ref: Tensor) -> Tensor:
    """Scale-invariant signal-to-distortion ratio in dB, (B, C, T) or (C, T) -> ().

    Per channel, with s = ref, ŝ = est and α = <ŝ, s> / ||s||² (no mean removal):
        SI-SDR = 10 log10(||α s||² / ||α s - ŝ||²)
    then averaged over channels. torchmetrics adds float eps to each sum; computed in float64, so
    identical signals score 10 log10(||s||² / 2.2e-16 + 1) (about 180 dB for a second of
    audio at -20 dBFS) instead of infinity, and a silent estimate scores exactly 0 dB.
    """
    est, ref = _check(est, ref)
    return scale_invariant_signal_distortion_ratio(est.double(), ref.double()).mean()


def _stft_magnitude(x: Tensor, window_length: int) -> Tensor:
    """(B, C, T) -> |STFT| (B, C, window_length // 2 + 1, frames), as audiotools'
    `AudioSignal.stft` with dac's settings: periodic Hann window (scipy's "hann"), hop
    window / 4, centred with reflect padding (`match_stride=False`)."""
    if x.shape[-1] < window_length // 2 + 1:
        raise ValueError(
            f"{x.shape[-1]} samples are too few for a {window_length}-sample STFT window "
            f"(reflect padding needs at least {window_length // 2 + 1})"
        )
    window = torch.hann_window(window_length, periodic=True, device=x.device, dtype=x.dtype)
    spec = torch.stft(
        x.reshape(-1, x.shape[-1]),
        n_fft=window_length,
        hop_length=window_length // 4,
        window=window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    return spec.abs().reshape(*x.shape[:2], *spec.shape[-2:])


def _log_plus_linear_l1(
    est: Tensor,
    ref: Tensor,
    clamp_eps: float,
    pow: float,
    log_weight: float = 1.0,
    mag_weight: float = 1.0,
) -> Tensor:
    """log_weight * mean |log10(max(est, eps)^pow) - log10(max(ref, eps)^pow)|
    + mag_weight * mean |est - ref| (dac's evaluation: both weights 1)."""
    log_est = est.clamp(clamp_eps).pow(pow).log10()
    log_ref = ref.clamp(clamp_eps).pow(pow).log10()
    loss = log_weight * (log_est - log_ref).abs().mean()
    if mag_weight:
        loss = loss + mag_weight * (est - ref).abs().mean()
    return loss


def stft_distance(
    est: Tensor,
    ref: Tensor,
    window_lengths: Sequence[int] = DAC_WINDOW_LENGTHS,
    clamp_eps: float = DAC_CLAMP_EPS,
    pow: float = DAC_POW,
) -> Tensor:
    """Multi-scale STFT distance of dac's evaluation (`dac.nn.loss.MultiScaleSTFTLoss()`),
    (B, C, T) or (C, T) -> ().

    Sum over window lengths w (hop w / 4, periodic Hann, centred, reflect padding) of
        mean |log10(max(|X|, eps)^2) - log10(max(|Y|, eps)^2)| + mean |(|X| - |Y|)|
    with X, Y the STFTs of estimate and reference, eps = 1e-5, means over channels, bins and
    frames (and items). T must be at least `min_length(window_lengths)`.
    """
    est, ref = _check(est, ref)
    return sum(
        _log_plus_linear_l1(_stft_magnitude(est, w), _stft_magnitude(ref, w), clamp_eps, pow)
        for w in window_lengths
    )


def mel_distance(
    est: Tensor,
    ref: Tensor,
    sample_rate: int,
    n_mels: Sequence[int] = DAC_N_MELS,
    window_lengths: Sequence[int] = DAC_WINDOW_LENGTHS,
    clamp_eps: float = DAC_CLAMP_EPS,
    pow: float = DAC_POW,
    log_weight: float = 1.0,
    mag_weight: float = 1.0,
) -> Tensor:
    """Multi-scale mel distance of dac's evaluation (`dac.nn.loss.MelSpectrogramLoss()`),
    (B, C, T) or (C, T) -> (). Other arguments give dac's other settings of that class, e.g. its
    training loss (losses/spectral.py's `MultiScaleMel`).

    As `stft_distance`, on mel magnitudes M = |X| @ F instead of |X|, pairing n_mels with window
    lengths ((150, 2048) and (80, 512)); F is librosa's default filterbank (Slaney mel scale,
    Slaney area normalisation, 0 Hz to sample_rate / 2), here from torchaudio, which matches it to
    float rounding. Values depend on the sample rate: dac reports them at 44.1 kHz (and 22.05
    kHz); `audioae-eval` at the model's rate.
    """
    est, ref = _check(est, ref)
    if len(n_mels) != len(window_lengths):
        raise ValueError(f"n_mels {list(n_mels)} and window_lengths {list(window_lengths)} differ")
    total = est.new_zeros(())
    for mels, w in zip(n_mels, window_lengths):
        fbank = melscale_fbanks(
            w // 2 + 1, 0.0, sample_rate / 2, mels, sample_rate, norm="slaney", mel_scale="slaney"
        ).to(device=est.device, dtype=est.dtype)  # (freqs, mels)
        m_est, m_ref = (
            (_stft_magnitude(x, w).transpose(2, 3) @ fbank).transpose(2, 3) for x in (est, ref)
        )
        total = total + _log_plus_linear_l1(m_est, m_ref, clamp_eps, pow, log_weight, mag_weight)
    return total


def visqol_available() -> bool:
    """Whether the `visqol-python` package (module `visqol` with `VisqolApi`) is importable.
    Google's own bindings, also named `visqol`, have another API and are not used."""
    try:
        return hasattr(importlib.import_module("visqol"), "VisqolApi")
    except ImportError:
        return False


# ViSQOL's rate and shortest input per mode (visqol-python 3.8): audio mode compares patches of
# 30 frames starting 15 frames in, over 80 ms windows at 20 ms hops, so it needs 45 frames:
# 44 * 960 + 3840 samples at 48 kHz (0.96 s); speech mode (voice-activity patches) measured
# 10240 samples at 16 kHz (0.64 s). Shorter input raises inside the package.
VISQOL_RATE = {"audio": 48000, "speech": 16000}
VISQOL_MIN_SAMPLES = {"audio": 46080, "speech": 10240}


def visqol_min_length(sample_rate: int, mode: str = "audio") -> int:
    """Shortest input at `sample_rate` that ViSQOL scores: it resamples to its own rate
    (torchaudio: ceil(T * 48000 / sample_rate) samples) and needs VISQOL_MIN_SAMPLES there."""
    return -(-VISQOL_MIN_SAMPLES[mode] * sample_rate // VISQOL_RATE[mode])


def visqol(est: Tensor, ref: Tensor, sample_rate: int, mode: str = "audio") -> Tensor:
    """ViSQOL v3 MOS-LQO (1 to 5) through `visqol-python`, (B, C, T) or (C, T) -> ().

    As dac's evaluation (audiotools.metrics.quality.visqol): each item is downmixed to mono and
    resampled to 48 kHz ("audio" mode, SVR mapping) or 16 kHz ("speech" mode). Needs
    `visqol_min_length(sample_rate, mode)` samples (0.96 s in audio mode). Slow: pure Python.
    Raises ImportError when the package is missing (`pip install visqol-python`).
    """
    if not visqol_available():
        raise ImportError("ViSQOL needs the visqol-python package: pip install visqol-python")
    from visqol import VisqolApi

    if mode not in ("audio", "speech"):
        raise ValueError(f"ViSQOL mode must be 'audio' or 'speech', got {mode!r}")
    est, ref = _check(est, ref)
    if ref.shape[-1] < (needed := visqol_min_length(sample_rate, mode)):
        raise ValueError(
            f"too few samples for ViSQOL ({mode} mode): {ref.shape[-1]} at {sample_rate} Hz, "
            f"needs {needed} ({VISQOL_MIN_SAMPLES[mode] / VISQOL_RATE[mode]:g} s)"
        )
    target_rate = VISQOL_RATE[mode]
    api = VisqolApi()
    api.create(mode=mode)
    mono = [resample(x.mean(dim=1).double().cpu(), sample_rate, target_rate) for x in (est, ref)]
    scores = [
        api.measure_from_arrays(r.numpy(), e.numpy(), sample_rate=target_rate).moslqo
        for e, r in zip(*mono)
    ]
    return torch.tensor(scores, dtype=torch.float64).mean()


def lowpass(
    audio: Tensor, sample_rate: int, cutoff_hz: float, transition_hz: float = 200.0
) -> Tensor:
    """Zero-phase low-pass filter, (..., T) -> (..., T): a reference condition for evaluations.

    A windowed-sinc FIR (Blackman window: about 74 dB stopband attenuation, transition band of
    about `transition_hz` centred on the cutoff, 2 * ceil(2.75 * sample_rate / transition_hz) + 1
    taps), normalised to unit gain at 0 Hz and applied by FFT convolution, centred, so there is no
    delay or phase shift: what remains below the cutoff is the input itself, as from an ideal
    band-limited codec. Zero padding beyond both ends. A cutoff at or above Nyquist returns the
    input unchanged.
    """
    if cutoff_hz >= sample_rate / 2:
        return audio.clone()
    half = math.ceil(2.75 * sample_rate / transition_hz)
    kw = dict(dtype=torch.float64, device=audio.device)
    fc = cutoff_hz / sample_rate  # cycles per sample
    taps = 2 * fc * torch.sinc(2 * fc * torch.arange(-half, half + 1, **kw))
    taps = taps * torch.blackman_window(2 * half + 1, periodic=False, **kw)
    taps = taps / taps.sum()
    length = audio.shape[-1] + 2 * half  # full linear convolution
    spectrum = torch.fft.rfft(audio.double(), n=length) * torch.fft.rfft(taps, n=length)
    out = torch.fft.irfft(spectrum, n=length)[..., half : half + audio.shape[-1]]
    return out.to(audio.dtype)
