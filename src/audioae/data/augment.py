"""Augmentation of training crops on the loader side, seeded per draw.

``Augment`` changes one crop (C, T) with a generator; ``augmented(dataset, augment)`` wraps a
dataset so that item n is ``augment(dataset[n], rng(seed, n))``: a pure function of the seed,
the draw number and the files, like every audioae dataset (resuming continues exactly). Held-out
data (demos, validation) is never wrapped.

The steps, in this order, each off by default:

1. loudness normalisation to a target drawn uniformly from ``loudness_lufs ± loudness_range``
   LUFS, measured by ITU-R BS.1770-4 (K-weighting, 400 ms blocks, absolute and relative gates)
   through ``pyloudnorm``, as descript-audio-codec's ``VolumeNorm`` and stable-codec's
   -20 ± 5 LUFS; stable-audio-tools' webdataset loader has the same, at -16 ± 2, off by default;
2. a random gain, uniform in ``gain_db`` dB;
3. the peak guard: a crop whose peak the gains would push above ``max_peak`` is scaled down to
   peak ``max_peak`` (its loudness then falls short of the target: no clipping, no limiter);
4. a downmix to dual mono with probability ``mono_p`` and a reversal of the channel order (left
   and right swapped) with probability ``channel_swap_p`` (multi-channel crops only);
5. a polarity flip (the whole crop negated) with probability ``polarity_p``, stable-audio-tools'
   ``PhaseFlipper`` (p = 0.5, always on there);
6. silence: the whole crop zeroed with probability ``silence_p``, so that the model learns
   silence -> silence (stable-audio-tools 0.0.20's training step, p = 1e-3, always on there).

Silence: a crop whose gated loudness is undefined (every block below the -70 LUFS absolute
gate, e.g. digital silence) is left at its level by step 1, and the gains of steps 1-2 together
never exceed ``max_gain_db``, so near-silent noise is not blown up to full scale.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from audioae.errors import ConfigError

_AUGMENT = 11  # the random stream of augmentation (the datasets use 0-5)
_BS1770_BLOCK = 0.4  # seconds


def loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (LUFS) of (C, T) float audio by ITU-R BS.1770-4 (pyloudnorm);
    -inf when every block is gated out (silence). Crops shorter than the standard's 400 ms
    block are measured as one block of their own length."""
    import pyloudnorm

    length = audio.shape[-1] / sample_rate
    meter = pyloudnorm.Meter(sample_rate, block_size=min(_BS1770_BLOCK, length))
    with warnings.catch_warnings():  # pyloudnorm warns on possible clipping; the guard handles it
        warnings.simplefilter("ignore")
        return float(meter.integrated_loudness(np.ascontiguousarray(audio.T, dtype=np.float64)))


class Augment:
    """One crop's augmentation; see the module docstring for the steps.

    Args:
        sample_rate: Hz, of the crops (for the loudness measurement).
        seed: >= 0; the augmentation of draw n depends on (seed, n) only.
        polarity_p: probability of negating the crop.
        gain_db: (low, high) range of a uniform random gain in dB; None = none.
        loudness_lufs: target loudness; None = no normalisation.
        loudness_range: the target is uniform in loudness_lufs ± this (LU).
        max_peak: peak guard after the gains (full scale is 1).
        max_gain_db: largest total boost of steps 1-2 (silence guard).
        mono_p: probability of replacing every channel by the channel mean.
        channel_swap_p: probability of reversing the channel order.
        silence_p: probability of zeroing the crop.
    """

    def __init__(
        self,
        sample_rate: int,
        seed: int = 0,
        polarity_p: float = 0.0,
        gain_db: Sequence[float] | None = None,
        loudness_lufs: float | None = None,
        loudness_range: float = 0.0,
        max_peak: float = 1.0,
        max_gain_db: float = 30.0,
        mono_p: float = 0.0,
        channel_swap_p: float = 0.0,
        silence_p: float = 0.0,
    ) -> None:
        probabilities = {
            "polarity_p": polarity_p,
            "mono_p": mono_p,
            "channel_swap_p": channel_swap_p,
            "silence_p": silence_p,
        }
        for name, p in probabilities.items():
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"augment.{name}={p}: a probability in [0, 1]")
        if gain_db is not None and (len(gain_db) != 2 or gain_db[0] > gain_db[1]):
            raise ConfigError(f"augment.gain_db={list(gain_db)}: give [low, high] with low <= high")
        if loudness_range < 0 or max_peak <= 0 or max_gain_db < 0 or seed < 0 or sample_rate < 1:
            raise ConfigError(
                "augment: need loudness_range >= 0, max_peak > 0, max_gain_db >= 0, seed >= 0; "
                f"got {loudness_range}, {max_peak}, {max_gain_db}, {seed}"
            )
        self.sample_rate, self.seed = sample_rate, seed
        self.polarity_p, self.mono_p, self.channel_swap_p = polarity_p, mono_p, channel_swap_p
        self.gain_db = None if gain_db is None else (float(gain_db[0]), float(gain_db[1]))
        self.loudness_lufs = None if loudness_lufs is None else float(loudness_lufs)
        self.loudness_range, self.max_peak = float(loudness_range), float(max_peak)
        self.max_gain_db = float(max_gain_db)
        self.silence_p = silence_p

    @property
    def active(self) -> bool:
        """Whether any step can change a crop (the loop wraps the data only then)."""
        gain = self.gain_db is not None and self.gain_db != (0.0, 0.0)
        probabilities = (self.polarity_p, self.mono_p, self.channel_swap_p, self.silence_p)
        return gain or self.loudness_lufs is not None or any(p > 0 for p in probabilities)

    def rng(self, n: int) -> np.random.Generator:
        """The generator of draw n."""
        return np.random.default_rng((self.seed, _AUGMENT, int(n)))

    def __call__(self, audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """(C, T) -> (C, T), float32. Every random number is drawn whatever the crop, so the
        choices of one step never depend on the audio or on another step being on."""
        u = rng.random(4)
        target = rng.uniform(-1.0, 1.0) * self.loudness_range + (self.loudness_lufs or 0.0)
        gain = rng.uniform(*self.gain_db) if self.gain_db is not None else 0.0
        db = gain
        if self.loudness_lufs is not None:
            measured = loudness(audio.numpy(), self.sample_rate)
            if np.isfinite(measured):
                db += target - measured
        db = min(db, self.max_gain_db)
        out = audio
        if db != 0.0:
            scale = 10.0 ** (db / 20.0)
            peak = float(audio.abs().max()) * scale
            if peak > self.max_peak:
                scale *= self.max_peak / peak
            out = audio * scale
        if audio.shape[0] > 1:
            if u[0] < self.mono_p:
                out = out.mean(dim=0, keepdim=True).expand_as(out)
            if u[1] < self.channel_swap_p:
                out = out.flip(0)
        if u[2] < self.polarity_p:
            out = -out
        if u[3] < self.silence_p:
            out = torch.zeros_like(out)
        return out.contiguous()


class Augmented(Dataset[torch.Tensor]):
    """A map-style dataset's items, augmented: item n is ``augment(dataset[n], augment.rng(n))``.
    ``held_out``/``held_out_names`` are the dataset's own (never augmented)."""

    def __init__(self, dataset: Dataset, augment: Augment) -> None:
        self.dataset, self.augment = dataset, augment
        self.held_out_names = getattr(dataset, "held_out_names", [])

    def held_out(self, path: str | None = None) -> Dataset:
        return self.dataset.held_out(path)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, n: int) -> torch.Tensor:
        return self.augment(self.dataset[n], self.augment.rng(n))


class AugmentedIterable(IterableDataset):
    """An iterable dataset's items, augmented. Item i of DataLoader worker w (of W) in process
    r (of R) uses the generator of number (i * R + r) * W + w: distinct for every item of a
    run, and the same on a rerun with the same processes and workers."""

    def __init__(self, dataset: IterableDataset, augment: Augment) -> None:
        self.dataset, self.augment = dataset, augment
        self.held_out_names = getattr(dataset, "held_out_names", [])
        self.start = 0

    def held_out(self, path: str | None = None):
        return self.dataset.held_out(path)

    def resume(self, start: int) -> AugmentedIterable:
        """The stream of a run resumed after ``start`` micro-batches (the training loop calls
        it): the dataset resumed, generators from number ``start * RESUME_SPAN`` on."""
        other = copy.copy(self)
        other.start = int(start) * RESUME_SPAN
        if hasattr(self.dataset, "resume"):
            other.dataset = self.dataset.resume(start)
        return other

    def __iter__(self) -> Iterator[torch.Tensor]:
        stride, offset = _stream_position()
        for i, audio in enumerate(self.dataset, self.start):
            yield self.augment(audio, self.augment.rng(i * stride + offset))


RESUME_SPAN = 2**32  # numbers per resume point of an iterable stream (more than a run draws)


def _stream_position() -> tuple[int, int]:
    """(number of parallel streams, this stream's index) over processes and workers."""
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    info = get_worker_info()
    workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
    return world * workers, rank * workers + worker


def augmented(dataset: Dataset, augment: Augment | None) -> Dataset:
    """``dataset`` with ``augment`` applied to its items; itself when augment is None or off."""
    if augment is None or not augment.active:
        return dataset
    if isinstance(dataset, IterableDataset):
        return AugmentedIterable(dataset, augment)
    return Augmented(dataset, augment)
