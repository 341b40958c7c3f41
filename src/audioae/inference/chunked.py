"""Encode and decode audio of any length in overlapping chunks, joined by crossfades.

Sizes are in latent frames (one frame = `model.downsampling_ratio` samples, pretransform
included). Chunks of `chunk_size` frames are spread evenly so that neighbours overlap by at least
`overlap` frames. Each pair of neighbours is joined at the middle of their overlap by a raised-
cosine crossfade of overlap/2 frames (windowed overlap-add; the weights of the two sides sum to
one), so at least overlap/4 frames at every chunk edge, where zero padding changes the network's
output, are never used. When that margin covers the network's receptive field, chunked and
whole-file results agree to float rounding; see tests/inference/test_chunked.py for measured
tolerances.

Codes cannot be averaged, so discrete models (and `sample=True`, whose independent noise draws
should not be averaged either) switch from chunk to chunk at the same midpoint without a fade.

Memory: one chunk goes through the network at a time and is added into a preallocated float32
output (on `out_device`); crossfade weights are made per chunk. So the working memory does not
grow with the file's length; only the input and output buffers do (21 MB per minute of 44.1 kHz
stereo float32 each). On a CPU, freed activations stay mapped for the next chunk while the
functions run (audioae/memory.py).
This fixes the reference's chunked encode_audio/decode_audio (§11 item 25): inputs shorter than a
chunk, crossfades instead of hard cuts, float32 outputs, validation.
"""

from __future__ import annotations

import bisect
import itertools
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from audioae.autoencoder import AudioAutoencoder
from audioae.errors import ConfigError
from audioae.memory import reuse_freed_memory

CHUNK_SIZE = 128  # latent frames; 128 frames x 2048 = 6 s at 44.1 kHz for the SA 2.0 VAE
OVERLAP = 32
WHOLE = sys.maxsize // 2  # a chunk size no file reaches: the whole file at once


def chunking(chunk_size: int | None = None, overlap: int | None = None) -> tuple[int, int]:
    """The (chunk_size, overlap) in latent frames to run with, one rule for every command.

    chunk_size: None for CHUNK_SIZE; 0 for whole files (one chunk, no overlap).
    overlap: None for OVERLAP, lowered to half the chunk size when the chunks are small; a
    given overlap must be 0 <= overlap <= chunk_size / 2."""
    if chunk_size is not None and chunk_size < 0:
        raise ConfigError(f"chunk_size={chunk_size}: must be >= 0 (0: whole files)")
    if chunk_size == 0:
        return WHOLE, 0
    chunk = CHUNK_SIZE if chunk_size is None else chunk_size
    if overlap is None:
        return chunk, min(OVERLAP, chunk // 2)
    if overlap < 0 or 2 * overlap > chunk:
        raise ConfigError(
            f"overlap={overlap}: must be between 0 and half the chunk size ({chunk} frames)"
        )
    return chunk, overlap


@dataclass
class Encoded:
    """latents (B, latent_dim, L); codes (B, n_codebooks, L) int64 for discrete models;
    length: the number of audio samples before padding to a multiple of the ratio."""

    latents: Tensor
    codes: Tensor | None
    length: int


def plan(frames: int, chunk_size: int, overlap: int) -> list[tuple[int, int]]:
    """Chunk spans [start, end) in frames covering `frames`, neighbours overlapping >= overlap."""
    if chunk_size < 1 or overlap < 0 or 2 * overlap > chunk_size:
        raise ConfigError(
            f"chunk_size={chunk_size}, overlap={overlap}: need chunk_size >= 1 and "
            "0 <= overlap <= chunk_size / 2"
        )
    if frames <= chunk_size:
        return [(0, frames)]
    n = math.ceil((frames - overlap) / (chunk_size - overlap))
    starts = [round(i * (frames - chunk_size) / (n - 1)) for i in range(n)]
    return [(s, s + chunk_size) for s in starts]


def _ramp(pos: Tensor, centre: float, width: float) -> Tensor:
    """0 before centre - width/2, 1 after centre + width/2, sin^2 in between."""
    if width <= 0:
        return (pos >= centre).to(torch.float32)
    u = ((pos - (centre - width / 2) + 0.5) / width).clamp(0, 1)
    return torch.sin(0.5 * math.pi * u) ** 2


class Windows:
    """Crossfade weights of each chunk of a plan, computed one chunk at a time.

    The boundary between neighbours sits at the middle of their overlap; fades are `fade` frames
    long; `scale` gives them in samples (frames x scale). Each chunk's weights are divided by the
    sum of all chunks' weights over its span, so they add up to exactly one everywhere without a
    length-sized normalisation buffer."""

    def __init__(self, spans: list[tuple[int, int]], fade: float, scale: int = 1):
        self.spans, self.fade, self.scale = spans, fade, scale
        self.bounds = [round((a[1] + b[0]) / 2) for a, b in itertools.pairwise(spans)]
        self.starts = [s for s, _ in spans]  # sorted, chunks of equal length

    def _raw(self, i: int, pos: Tensor) -> Tensor:
        start, end = self.spans[i]
        w = ((pos >= start * self.scale) & (pos < end * self.scale)).double()
        if i > 0:
            w = w * _ramp(pos, self.bounds[i - 1] * self.scale, self.fade * self.scale)
        if i < len(self.spans) - 1:
            w = w * (1 - _ramp(pos, self.bounds[i] * self.scale, self.fade * self.scale))
        return w

    def __getitem__(self, i: int) -> Tensor:
        start, end = self.spans[i]
        pos = torch.arange(start * self.scale, end * self.scale, dtype=torch.float64)
        first = bisect.bisect_right(self.starts, start - (end - start))  # e_j > start
        last = bisect.bisect_left(self.starts, end)  # s_j < end
        covering = [j for j in range(first, last) if self.spans[j][1] > start]
        total = sum(self._raw(j, pos) for j in covering)
        return (self._raw(i, pos) / total).float()

    def __len__(self) -> int:
        return len(self.spans)


@contextmanager
def _running(model: AudioAutoencoder, device: torch.device) -> Iterator[None]:
    """Eval mode and reused memory (audioae/memory.py) in the block; then the model's mode."""
    was_training = model.training
    model.eval()
    try:
        with reuse_freed_memory(device):
            yield
    finally:
        model.train(was_training)


def _add(out: Tensor, piece: Tensor, window: Tensor, start: int) -> None:
    end = start + piece.shape[-1]
    out[..., start:end].addcmul_(piece.to(out.device, torch.float32), window.to(out.device))


@torch.inference_mode()
def encode_long(
    model: AudioAutoencoder,
    audio: Tensor,
    chunk_size: int = CHUNK_SIZE,
    overlap: int = OVERLAP,
    sample: bool = False,
    out_device: str | torch.device = "cpu",
) -> Encoded:
    """(B, in_channels, T) for any T >= 1 -> Encoded with L = ceil(T / ratio) frames.

    The audio is zero-padded at the end to a multiple of the ratio; `Encoded.length` keeps T so
    that decode_long can trim it back. VAE latents are the mean unless `sample`."""
    if audio.dim() != 3 or audio.shape[1] != model.in_channels or audio.shape[-1] < 1:
        raise ValueError(
            f"expected audio (batch, {model.in_channels}, time >= 1), got {tuple(audio.shape)}"
        )
    ratio, length = model.downsampling_ratio, audio.shape[-1]
    frames = -(-length // ratio)
    spans = plan(frames, chunk_size, overlap)
    device = next(model.parameters()).device
    hard = sample or model.is_discrete
    windows = Windows(spans, 0 if hard else overlap // 2)
    b = audio.shape[0]
    latents = torch.zeros(b, model.latent_dim, frames, device=out_device)
    codes = None
    with _running(model, device):
        for i, (start, end) in enumerate(spans):
            window = windows[i]
            piece = audio[..., start * ratio : end * ratio].to(device, torch.float32)
            if piece.shape[-1] < (end - start) * ratio:  # the last chunk: pad to the ratio
                piece = F.pad(piece, (0, (end - start) * ratio - piece.shape[-1]))
            result = model.encode(piece, sample=sample)
            _add(latents, result.latents, window, start)
            if model.is_discrete:
                chunk_codes = result.codes.to(out_device)
                if codes is None:
                    shape = (b, chunk_codes.shape[1], frames)
                    codes = torch.zeros(shape, dtype=torch.long, device=out_device)
                keep = window.to(out_device) > 0.5
                codes[..., start:end][..., keep] = chunk_codes[..., keep]
    return Encoded(latents, codes, length)


@torch.inference_mode()
def decode_long(
    model: AudioAutoencoder,
    latents: Tensor,
    length: int | None = None,
    chunk_size: int = CHUNK_SIZE,
    overlap: int = OVERLAP,
    out_device: str | torch.device = "cpu",
) -> Tensor:
    """latents (B, latent_dim, L) -> audio (B, out_channels, L * ratio), trimmed to `length`.

    Neighbouring chunks always crossfade (audio, unlike codes, can be averaged)."""
    if latents.dim() != 3 or latents.shape[1] != model.latent_dim or latents.shape[-1] < 1:
        raise ValueError(
            f"expected latents (batch, {model.latent_dim}, frames >= 1), got {tuple(latents.shape)}"
        )
    ratio, frames = model.downsampling_ratio, latents.shape[-1]
    spans = plan(frames, chunk_size, overlap)
    windows = Windows(spans, overlap // 2, scale=ratio)
    device = next(model.parameters()).device
    audio = torch.zeros(latents.shape[0], model.out_channels, frames * ratio, device=out_device)
    with _running(model, device):
        for i, (start, end) in enumerate(spans):
            piece = model.decode(latents[..., start:end].to(device, torch.float32))
            _add(audio, piece, windows[i], start * ratio)
    return audio if length is None else audio[..., :length]


def decode_codes_long(
    model: AudioAutoencoder,
    codes: Tensor,
    length: int | None = None,
    chunk_size: int = CHUNK_SIZE,
    overlap: int = OVERLAP,
    out_device: str | torch.device = "cpu",
) -> Tensor:
    """codes (B, n_codebooks, L) of a discrete model -> audio, as decode_long."""
    if not model.is_discrete:
        raise ValueError("decoding codes needs a model with a discrete bottleneck")
    device = next(model.parameters()).device
    with torch.inference_mode():
        latents = model.bottleneck.decode_tokens(codes.to(device)).float()
    return decode_long(model, latents, length, chunk_size, overlap, out_device)
