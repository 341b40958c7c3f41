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
from audioae.files import InputWarning, atomic_write, special_kind

BLOCK = 1 << 20  # frames per read: what was read before a mid-file error is kept


def _reason(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def read_audio(path: str | Path) -> tuple[Tensor, int]:
    """(channels, samples) float32 and the file's sample rate. NaN or infinite samples are an
    error; a truncated file (fewer frames than its header declares, or a read error after some
    frames) is a warning (InputWarning) and what was read is used."""
    path = Path(path)
    if kind := special_kind(path):  # a pipe would block the read for ever
        raise AudioAEError(f"{path}: {kind}, not an audio file")
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


FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
# Lossy codecs take float input as it is; every other subtype stores integers.
UNCLIPPED = (*FLOAT_SUBTYPES, "VORBIS", "OPUS", "MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III")


def audio_subtype(fmt: str, subtype: str | None = None) -> str:
    """The soundfile subtype to write format `fmt` (a file ending: wav, flac, ogg, mp3, ...)
    with: `subtype`, checked, or 32-bit float for WAV-like formats, 24-bit for FLAC, the
    format's own default otherwise (Vorbis for OGG, MPEG layer III for MP3). Fails on a
    format or combination soundfile cannot write, so commands check before any work."""
    fmt = fmt.upper()
    if fmt not in sf.available_formats():
        choices = ", ".join(sorted(f.lower() for f in sf.available_formats()))
        raise AudioAEError(f"--format {fmt.lower()}: not a format soundfile writes ({choices})")
    if subtype is None:
        subtype = {"WAV": "FLOAT", "AIFF": "FLOAT", "W64": "FLOAT", "CAF": "FLOAT",
                   "FLAC": "PCM_24"}.get(fmt) or sf.default_subtype(fmt)  # fmt: skip
    if not subtype or not sf.check_format(fmt, subtype):
        choices = ", ".join(sorted(sf.available_subtypes(fmt)))
        raise AudioAEError(f"--subtype {subtype}: not valid for {fmt.lower()} ({choices})")
    return subtype


def check_writable_audio(fmt: str, subtype: str | None, sample_rate: int, channels: int) -> None:
    """Write a moment of silence in memory as `write_audio` would write the outputs, so that
    what the codec refuses (Opus at 44.1 kHz) fails before the model runs."""
    import io

    subtype = audio_subtype(fmt, subtype)
    try:
        sf.write(io.BytesIO(), np.zeros((sample_rate // 10, channels), np.float32), sample_rate,
                 subtype=subtype, format=fmt.upper())  # fmt: skip
    except Exception as e:
        raise AudioAEError(
            f"--format {fmt.lower()} --subtype {subtype}: cannot write {sample_rate} Hz, "
            f"{channels} channel(s) ({_reason(e)})"
        ) from None


def write_audio(path: str | Path, audio: Tensor, sample_rate: int, subtype: str | None) -> None:
    """Write (C, T) audio (atomically); the subtype defaults as `audio_subtype` says. Integer
    subtypes clip what lies beyond full scale, with a warning (InputWarning) saying how much."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").upper()
    subtype = audio_subtype(fmt, subtype)
    data = audio.detach().cpu().float().numpy().T
    if subtype not in UNCLIPPED and (over := np.abs(data) > 1.0).any():
        warnings.warn(
            f"{path}: {over.mean():.2%} of the samples beyond full scale (peak "
            f"{np.abs(data).max():.3g}) clipped to [-1, 1] by the integer subtype {subtype}; "
            + ("--subtype FLOAT" if sf.check_format(fmt, "FLOAT") else "--format wav")
            + " keeps them",
            InputWarning,
            stacklevel=2,
        )
        data = data.clip(-1.0, 1.0)
    try:
        with atomic_write(path) as tmp:
            sf.write(str(tmp), data, sample_rate, subtype=subtype, format=fmt)
    except Exception as e:
        raise AudioAEError(f"{path}: cannot write audio ({_reason(e)})") from None
