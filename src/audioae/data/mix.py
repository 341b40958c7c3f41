"""Weighted mixtures of data sources: e.g. 0.5 music, 0.3 speech, 0.2 effects (as
descript-audio-codec's weighted folder groups and NeMo's dataset sample weights).

``mix(sources, weights, seed)`` (``data=mix``) gives:

- ``Mix``, when every source is map-style (audio_dir, synthetic: draw number -> crop): draw n
  takes source k = the first with u(seed, n) < w_1 + ... + w_k (weights normalised; u a
  counter-based uniform of (seed, n)), and returns that source's own draw n. Item n is a pure
  function of the seed, n and the sources, like every audioae dataset, and each draw number of
  a source is used once. ``proportions(first, stop)`` recomputes the sources of any range of
  draws without reading audio (the loop logs them as ``data/mix/<name>``).
- ``IterableMix``, when any source is an IterableDataset (webdataset shards): item i of a
  stream picks its source the same way from its own number (distinct per process and
  DataLoader worker) and takes the next item of that source (a map-style source: its draw of
  that number). Its proportions follow the same rule, but which numbers a worker produced is
  not known to the loop, so only ``weights`` are logged for it.

``held_out()`` is the mix, with the same weights, of every source's held-out part, and
``held_out_names`` lists each source's held-out files as ``<source>/<file>``.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from audioae.data.audio_dir import DataError
from audioae.data.augment import RESUME_SPAN, _stream_position

_MIX = 13  # the random stream of the mixture's picks
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, element-wise on uint64 (a bijective, well-mixed hash)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def uniforms(seed: int, draws: np.ndarray) -> np.ndarray:
    """u(seed, n) in [0, 1) for each draw number n: vectorised, so the sources of a million
    draws are computed in milliseconds."""
    key = _splitmix64(np.array([seed * 1000 + _MIX], dtype=np.uint64))
    bits = _splitmix64(np.asarray(draws, dtype=np.uint64) ^ key)
    return (bits >> np.uint64(11)).astype(np.float64) / float(2**53)


class _Weights:
    def __init__(self, sources: Mapping[str, Dataset], weights: Mapping[str, float], seed: int):
        names, given = list(sources), dict(weights)
        if not names:
            raise DataError("data=mix: no sources; add some, e.g. +data@data.sources.NAME=...")
        if set(given) != set(names):
            missing, extra = sorted(set(names) - set(given)), sorted(set(given) - set(names))
            raise DataError(
                f"data.weights must name every source once: sources {names}"
                + (f", no weight for {missing}" if missing else "")
                + (f", no source for {extra}" if extra else "")
            )
        values = np.array([float(given[n]) for n in names])
        if (values < 0).any() or values.sum() <= 0 or not np.isfinite(values).all():
            raise DataError(f"data.weights={given}: need weights >= 0 with a positive sum")
        if seed < 0:
            raise DataError(f"data.seed={seed}: must be >= 0")
        self.names, self.sources, self.seed = names, [sources[n] for n in names], seed
        self.weights = dict(zip(names, (values / values.sum()).tolist(), strict=True))
        self._edges = np.cumsum(values / values.sum())
        self._edges[-1] = 1.0  # rounding: u < 1 always falls in a source

    def sources_of(self, draws) -> np.ndarray:
        """The source index of each draw number."""
        return np.searchsorted(self._edges, uniforms(self.seed, draws), side="right")

    def proportions(self, first: int, stop: int) -> dict[str, float]:
        """Each source's share of the draws first, ..., stop - 1."""
        if stop <= first:
            return {}
        counts = np.bincount(self.sources_of(np.arange(first, stop)), minlength=len(self.names))
        return dict(zip(self.names, (counts / (stop - first)).tolist(), strict=True))

    def _held_sources(self, path: str | None) -> dict[str, Dataset]:
        if path is not None:
            raise DataError(
                f"data=mix: a held-out folder (trainer.val_path={path}) is ambiguous for a "
                "mixture; each source's own held-out part is used without it"
            )
        return {name: s.held_out() for name, s in zip(self.names, self.sources, strict=True)}

    @property
    def held_out_names(self) -> list[str]:
        return [
            f"{name}/{file}"
            for name, source in zip(self.names, self.sources, strict=True)
            for file in getattr(source, "held_out_names", [])
        ]


class Mix(_Weights, Dataset[torch.Tensor]):
    """A map-style mixture: item n is ``sources[k][n]`` with k = ``sources_of([n])[0]``."""

    def __init__(self, sources: Mapping[str, Dataset], weights: Mapping[str, float], seed: int):
        _Weights.__init__(self, sources, weights, seed)

    def held_out(self, path: str | None = None) -> Dataset:
        return mix(self._held_sources(path), self.weights, self.seed)

    def __len__(self) -> int:
        return min(len(s) for s in self.sources)

    def __getitem__(self, n: int) -> torch.Tensor:
        n = int(n)
        if n < 0:
            raise IndexError(f"Mix: draw number must be >= 0, got {n}")
        return self.sources[int(self.sources_of([n])[0])][n]


class IterableMix(_Weights, IterableDataset):
    """An iterable mixture (some source is an IterableDataset): item i of the stream of
    process r (of R), DataLoader worker w (of W) has number (i * R + r) * W + w and takes the
    next item of the source that number picks."""

    def __init__(self, sources: Mapping[str, Dataset], weights: Mapping[str, float], seed: int):
        _Weights.__init__(self, sources, weights, seed)
        self.start = 0

    def held_out(self, path: str | None = None) -> Dataset:
        return mix(self._held_sources(path), self.weights, self.seed)

    def resume(self, start: int) -> IterableMix:
        """The stream of a run resumed after ``start`` micro-batches (the training loop calls
        it): the sources resumed alike, numbers from ``start * RESUME_SPAN`` on (as for
        shards, reseeded rather than replayed)."""
        other = copy.copy(self)
        other.start = int(start)
        other.sources = [s.resume(start) if hasattr(s, "resume") else s for s in self.sources]
        return other

    def __iter__(self) -> Iterator[torch.Tensor]:
        stride, offset = _stream_position()
        streams: dict[int, Iterator[torch.Tensor]] = {}
        for i in itertools.count(self.start * RESUME_SPAN):
            number = i * stride + offset
            k = int(self.sources_of([number])[0])
            source = self.sources[k]
            if not isinstance(source, IterableDataset):
                yield source[number]
                continue
            if k not in streams:
                streams[k] = iter(source)
            try:
                yield next(streams[k])
            except StopIteration:  # a finite source: the mixture ends with its first
                return


def mix(sources: Mapping[str, Dataset], weights: Mapping[str, float], seed: int = 0) -> Dataset:
    """The mixture of ``sources`` (name -> dataset) drawn with ``weights`` (name -> weight,
    normalised to sum 1): a ``Mix`` when every source is map-style, else an ``IterableMix``."""
    sources = dict(sources)
    if any(isinstance(s, IterableDataset) for s in sources.values()):
        return IterableMix(sources, weights, seed)
    return Mix(sources, weights, seed)


def realised_shares(dataset: Dataset, first: int, stop: int) -> dict[str, float]:
    """``data/mix/<name>``: each source's share of draws first, ..., stop - 1 of a map-style
    mixture (none for other datasets, and for an IterableMix, whose numbers the loop does not
    see)."""
    if not isinstance(dataset, Mix):
        return {}
    return {f"data/mix/{k}": v for k, v in dataset.proportions(first, stop).items()}
