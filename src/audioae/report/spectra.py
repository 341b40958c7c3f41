"""Mel spectrograms of the report as PNG files (matplotlib, Agg, no pyplot state).

Each picture is a log-mel power spectrogram (torchaudio; 2048-sample window, hop 512, 128 HTK mel
bands up to Nyquist, power averaged over channels so that stereo cancellation shows nothing it
should not) in dB. All pictures of one file share the reference's scale: its maximum down to 80
dB below it. The difference picture is reconstruction dB minus reference dB, both floored at that
80 dB range (so that noise below it does not paint the picture), shown from -20 to +20 dB: red
where the reconstruction is louder, blue where it is quieter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchaudio

from audioae.errors import AudioAEError
from audioae.files import atomic_write

N_FFT, HOP, N_MELS = 2048, 512, 128
RANGE_DB = 80.0  # below the reference's maximum
DIFF_DB = 20.0  # the difference picture's colour scale, +-


def require_matplotlib() -> None:
    """One line when matplotlib, which draws the pictures, is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise AudioAEError(
            "--report draws spectrograms with matplotlib, which is not installed "
            "(pip install matplotlib)"
        ) from None


def mel_db(audio: np.ndarray, rate: int) -> np.ndarray:
    """(C, T) samples -> (N_MELS, frames) log-mel power in dB, the channels' mean power; a clip
    shorter than the centred STFT's reflect padding needs (N_FFT // 2 + 1) is zero-padded."""
    if (short := N_FFT // 2 + 1 - audio.shape[-1]) > 0:
        audio = np.pad(audio, ((0, 0), (0, short)))
    mel = torchaudio.transforms.MelSpectrogram(
        rate, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, power=2.0
    )
    power = mel(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))).mean(0)
    return (10 * torch.log10(power.clamp(min=1e-10))).numpy()


def draw(
    path: Path, image: np.ndarray, rate: int, vmin: float, vmax: float, cmap: str, label: str
) -> None:
    """One spectrogram picture (time in s across, mel bands labelled in kHz) with its colour bar."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.8, 2.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.11, 0.2, 0.74, 0.72))
    cax = fig.add_axes((0.87, 0.2, 0.025, 0.72))
    seconds = image.shape[1] * HOP / rate
    shown = ax.imshow(
        image,
        origin="lower",
        aspect="auto",
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        extent=(0, seconds, 0, N_MELS),
        interpolation="nearest",
    )
    khz = [k for k in (0.5, 1, 2, 4, 8, 16) if k * 1000 < rate / 2]
    ax.set_yticks([mel_position(k * 1000, rate) for k in khz], [f"{k:g}" for k in khz])
    ax.set_ylabel("kHz", fontsize=8)
    ax.set_xlabel("s", fontsize=8, labelpad=1)
    ax.tick_params(labelsize=7)
    bar = fig.colorbar(shown, cax=cax)
    bar.ax.tick_params(labelsize=7)
    bar.set_label(label, fontsize=7)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png")


def mel_position(hz: float, rate: int) -> float:
    """Where `hz` lies on the HTK mel axis of N_MELS bands from 0 to rate / 2 (torchaudio's)."""

    def mel(f: float) -> float:
        return 2595 * np.log10(1 + f / 700)

    return mel(hz) / mel(rate / 2) * N_MELS


def draw_file(
    folder: Path, reference: tuple[np.ndarray, int], others: dict[str, tuple[np.ndarray, int]]
) -> list[str]:
    """reference.png, NAME.png and NAME_diff.png for every (audio, rate) of `others` into
    `folder`; another rate than the reference's is resampled to it first. Returns the names."""
    ref_audio, rate = reference
    ref = mel_db(ref_audio, rate)
    top = float(ref.max())
    floor = top - RANGE_DB
    folder.mkdir(parents=True, exist_ok=True)
    draw(folder / "reference.png", ref, rate, floor, top, "magma", "dB")
    names = ["reference.png"]
    for name, (audio, audio_rate) in others.items():
        if audio_rate != rate:
            audio = torchaudio.functional.resample(torch.from_numpy(audio), audio_rate, rate)
            audio = audio.numpy()
        est = mel_db(audio, rate)
        frames = min(est.shape[1], ref.shape[1])
        diff = np.maximum(est[:, :frames], floor) - np.maximum(ref[:, :frames], floor)
        draw(folder / f"{name}.png", est, rate, floor, top, "magma", "dB")
        draw(folder / f"{name}_diff.png", diff, rate, -DIFF_DB, DIFF_DB, "RdBu_r", "dB diff")
        names += [f"{name}.png", f"{name}_diff.png"]
    return names
