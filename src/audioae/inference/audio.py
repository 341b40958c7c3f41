"""Audio files in and out: soundfile for any format libsndfile reads (WAV, FLAC, OGG, MP3, ...),
resampling and channel conversion to what the model expects."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

from audioae import autoencoder
from audioae.errors import AudioAEError
from audioae.files import InputWarning, atomic_write

BLOCK = 1 << 20  # frames per read: what was read before a mid-file error is kept


def _reason(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def read_audio(path: str | Path) -> tuple[Tensor, int]:
    """(channels, samples) float32 and the file's sample rate. NaN or infinite samples are an
    error; a truncated file (fewer frames than its header declares, or a read error after some
    frames) is a warning (InputWarning) and what was read is used."""
    path = Path(path)
    if not path.is_file():
        raise AudioAEError(f"{path}: no such file")
    blocks: list[np.ndarray] = []
    try:
        with sf.SoundFile(str(path)) as f:
            rate, channels = f.samplerate, f.channels
            while len(block := f.read(BLOCK, dtype="float32", always_2d=True)):
                blocks.append(block)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError, ...
        if not blocks:
            raise AudioAEError(f"{path}: cannot read audio ({_reason(e)})") from None
        frames = sum(len(b) for b in blocks)
        warnings.warn(
            f"{path}: read error after {frames} frames ({_reason(e)}); using those "
            f"{frames / rate:.3f} s",
            InputWarning,
            stacklevel=2,
        )
    data = np.concatenate(blocks) if blocks else np.zeros((0, 1), np.float32)
    if data.shape[0] == 0:
        raise AudioAEError(f"{path}: the file holds no samples")
    declared = _declared_frames(path, channels)
    if declared is not None and declared > data.shape[0]:
        warnings.warn(
            f"{path}: truncated: its header declares {declared} frames, read {data.shape[0]} "
            f"({data.shape[0] / rate:.3f} s of {declared / rate:.3f} s); using what was read",
            InputWarning,
            stacklevel=2,
        )
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).any(axis=1).sum())
        raise AudioAEError(f"{path}: {bad} frame(s) hold NaN or infinite samples")
    return torch.from_numpy(data.T.copy()), int(rate)


def _declared_frames(path: Path, channels: int) -> int | None:
    """The frame count a RIFF WAV header declares (libsndfile reports what the file holds,
    not this), or None for other files and streamed WAVs (size 0 or 0xFFFFFFFF)."""
    with path.open("rb") as f:
        head = f.read(1 << 16)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, block_align = 12, 0
    while pos + 8 <= len(head):
        tag, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if tag == b"fmt " and pos + 22 <= len(head):
            block_align = struct.unpack("<H", head[pos + 20 : pos + 22])[0]
        if tag == b"data":
            if not block_align or size in (0, 0xFFFFFFFF):
                return None
            return size // block_align
        pos += 8 + size + (size & 1)
    return None


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
    """Resample (torchaudio's windowed-sinc resampler) and convert channels; a file with more
    channels than the model takes is a warning (InputWarning) saying what was done."""
    have = audio.shape[0]
    if have > channels:
        done = "mixed down to mono" if channels == 1 else f"kept the first {channels}"
        warnings.warn(
            f"{source}: {have} channels, the model takes {channels}: {done}",
            InputWarning,
            stacklevel=2,
        )
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
