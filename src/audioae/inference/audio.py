"""Audio files in and out: soundfile for any format libsndfile reads (WAV, FLAC, OGG, MP3, ...),
resampling and channel conversion to what the model expects."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

from audioae import autoencoder
from audioae.errors import AudioAEError
from audioae.files import atomic_write


def read_audio(path: str | Path) -> tuple[Tensor, int]:
    """(channels, samples) float32 and the file's sample rate."""
    path = Path(path)
    if not path.is_file():
        raise AudioAEError(f"{path}: no such file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError, ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AudioAEError(f"{path}: cannot read audio ({reason})") from None
    if data.shape[0] == 0:
        raise AudioAEError(f"{path}: the file holds no samples")
    return torch.from_numpy(data.T.copy()), int(rate)


def convert_channels(audio: Tensor, channels: int, source: str = "audio") -> Tensor:
    """(C, T) -> (channels, T) by the model's channel rule (autoencoder.convert_channels): a
    mono mixdown for 1, mono copied to every channel, or the first `channels` channels of a
    wider file (as stable-audio-tools keeps the first two)."""
    try:
        return autoencoder.convert_channels(audio, channels)
    except ValueError:
        raise AudioAEError(
            f"{source}: {audio.shape[0]} channels, cannot convert to the model's {channels}"
        ) from None


def to_model(audio: Tensor, rate: int, sample_rate: int, channels: int, source: str) -> Tensor:
    """Resample (torchaudio's windowed-sinc resampler) and convert channels."""
    audio = convert_channels(audio, channels, source)
    if rate != sample_rate:
        audio = AF.resample(audio, rate, sample_rate)
    return audio


def write_audio(path: str | Path, audio: Tensor, sample_rate: int, subtype: str | None) -> None:
    """Write (C, T) audio (atomically); the subtype defaults to 32-bit float for WAV and 24-bit
    for FLAC."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").upper()
    if subtype is None:
        subtype = "FLOAT" if fmt in ("WAV", "AIFF", "W64", "CAF") else "PCM_24"
    data = audio.detach().cpu().float().numpy().T
    if subtype.startswith("PCM"):
        data = data.clip(-1.0, 1.0)
    try:
        with atomic_write(path) as tmp:
            sf.write(str(tmp), data, sample_rate, subtype=subtype, format=fmt)
    except Exception as e:
        raise AudioAEError(f"{path}: cannot write audio ({e})") from None
