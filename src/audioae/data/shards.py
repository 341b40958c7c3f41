"""Random crops of the audio members of WebDataset tar shards (local, brace patterns, ``pipe:``).

A shard is a tar file whose members are grouped into samples by their key (the name before the
first dot), as in webdataset: ``0001.flac`` + ``0001.json`` is one sample with its metadata.
Each sample gives ``crops`` crops per epoch (default 1), by AudioDir's rules
(``audio_dir.read_crop``: resampling, channel mapping, silence rejection).

Splitting: the R = processes x DataLoader workers readers each read their own shards: in epoch
e the shard list is put in a seeded order and reader r takes shards r, r + R, r + 2R, ...; so
within an epoch no two readers read the same shard and together they read all of them. With
fewer shards than readers, every reader reads every shard and keeps every R-th sample instead
(disjoint and covering again, at R times the reading). Each reader shuffles its crops through a
seeded buffer of ``shuffle`` crops; epochs are reader-local (a reader with fewer shards starts
its next epoch sooner).

Determinism: the stream of reader r depends on (seed, start, R, r) and the shards only; a crop
depends on (seed, start, epoch, shard, sample). ``resume(start)`` (called by the training loop
with the number of micro-batches already consumed) reseeds the epoch orders and crops rather than
replaying what was consumed: a resumed run is deterministic but sees a different order than an
uninterrupted one, starting from a fresh epoch (see the README).

A corrupt member is one warning naming the shard and member; an unreadable shard (missing file,
failing ``pipe:`` command, truncated tar) is one warning naming it (per reader), and reading goes
on with the next one. Shards with no readable audio at all are one ``DataError`` at start-up.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import logging
import os
import tarfile
import warnings
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

try:
    from webdataset import gopen
    from webdataset.shardlists import expand_urls
    from webdataset.tariterators import group_by_keys, tar_file_expander
except ImportError as e:  # the optional [data] extra
    raise ImportError(f"data=webdataset needs webdataset: pip install 'audioae[data]' ({e})") from e

from audioae.data.audio_dir import EXTENSIONS, AudioDir, DataError, _File, read_crop, split_holdout
from audioae.files import InputWarning

log = logging.getLogger(__name__)

_ORDER, _CROP, _SHUFFLE, _HELD_ORDER, _HELD_CROP = 10, 11, 12, 13, 14
# Errors of reading a shard (gopen's pipes raise OSError on a failing command) or of decoding
# a member (LibsndfileError is a RuntimeError); anything else is a bug and propagates.
_READ_ERRORS = (OSError, EOFError, tarfile.TarError, RuntimeError, ValueError)


class Member(NamedTuple):
    """One crop of a shard sample, with where it came from and its ``.json`` metadata."""

    audio: torch.Tensor  # float32 (channels, sample_size) in [-1, 1]
    url: str
    key: str
    metadata: dict


def shard_urls(urls: str | Sequence[str]) -> list[str]:
    """The shard list: each entry brace-expanded (``a-{000..009}.tar``; ``::`` separates
    several patterns in one string), local paths with ``~`` expanded."""
    entries = [urls] if isinstance(urls, str) else list(urls)
    out = []
    for entry in entries:
        for url in expand_urls(str(entry)):
            out.append(url if _remote(url) else os.path.expanduser(url))
    return out


def _remote(url: str) -> bool:
    return url.startswith("pipe:") or "://" in url


class Shards(IterableDataset[torch.Tensor]):
    """Endless crops of the audio members of tar shards.

    Iterating yields float32 tensors (channels, sample_size) in [-1, 1], like AudioDir items;
    ``samples()`` yields them as ``Member`` (with url, key and parsed ``.json`` metadata).

    Args:
        urls: a shard path, brace pattern or ``pipe:COMMAND`` (its stdout is the tar), or a
            list of them. Missing local files are warned about and left out.
        sample_rate, channels, sample_size: the shape of the items.
        seed: >= 0; the streams depend on (seed, start, readers) and the shards only.
        extensions: audio member suffixes used (any soundfile reads), without dots, any case.
        silence_db: crops with a lower peak level (dBFS) are rejected (another crop of the
            same member is tried, up to ``max_tries``, then the member is skipped).
        max_tries: crops per member.
        shuffle: the shuffle buffer, in crops per reader (0 or 1: none).
        holdout: shards kept out of training (``audio_dir.split_holdout`` on their file names):
            a fraction 0 <= f < 1 or a count >= 1; ``held_out()`` crops them.
        held_members: at most this many samples of the held-out shards are kept (in memory,
            undecoded) for demos and validation.
        crops: crops per sample and epoch (each from its own random offset): reading a long
            member whole for one short crop is most of a shard's loading cost.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        sample_rate: int,
        channels: int,
        sample_size: int,
        seed: int = 0,
        extensions: Sequence[str] = EXTENSIONS,
        silence_db: float = -60.0,
        max_tries: int = 10,
        shuffle: int = 100,
        holdout: float = 0,
        held_members: int = 64,
        crops: int = 1,
    ) -> None:
        super().__init__()
        if sample_rate < 1 or channels < 1 or sample_size < 1 or seed < 0 or max_tries < 1:
            raise ValueError(
                f"Shards: need sample_rate, channels, sample_size and max_tries >= 1 and "
                f"seed >= 0; got {sample_rate}, {channels}, {sample_size}, {max_tries}, {seed}"
            )
        if shuffle < 0 or held_members < 1 or crops < 1:
            raise ValueError(
                f"Shards: need shuffle >= 0, held_members >= 1, crops >= 1; got {shuffle}, "
                f"{held_members}, {crops}"
            )
        self.sample_rate, self.channels, self.sample_size = sample_rate, channels, sample_size
        self.seed, self.max_tries, self.shuffle = seed, max_tries, shuffle
        self.extensions = tuple(sorted({str(e).lower().lstrip(".") for e in extensions}))
        self.silence_db, self.holdout, self.held_members = float(silence_db), holdout, held_members
        self.start, self.crops = 0, crops

        given = shard_urls(urls)
        found = [url for url in given if _remote(url) or os.path.isfile(url)]
        if not found:
            raise DataError(f"Shards: no shards found: {urls!r} matches no existing file")
        if len(found) < len(given):
            have = set(found)
            missing = [url for url in given if url not in have]
            warnings.warn(
                f"Shards: skipping {len(missing)} missing shard(s) of {len(given)}: "
                f"{', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}",
                stacklevel=2,
            )
        # Held out by the shard's file name, so that moving the shards keeps the split.
        names = {url: url.rstrip(" -").rsplit("/", 1)[-1] for url in found}
        if len(set(names.values())) < len(names):  # same names in several folders
            names = {url: url for url in found}
        held_names = split_holdout(list(names.values()), holdout)
        held = {url for url in found if names[url] in held_names}
        self.urls = [u for u in found if u not in held]
        self.held_out_urls = [u for u in found if u in held]
        self.held_out_names: list[str] = list(self.held_out_urls)
        # Torch's process group, when the run has one (Accelerate starts it before the data).
        dist = torch.distributed
        ready = dist.is_available() and dist.is_initialized()
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if ready else (0, 1)
        self._index = {url: i for i, url in enumerate(self.urls)}
        self._warned: set[str] = set()
        self._count: dict[str, int] = {}  # samples per shard, as last read (for `every`)
        self._check_readable(found)
        log.info(
            "Shards: %d shard(s) from %s: %d for training, %d held out (holdout=%s)",
            len(found),
            urls,
            len(self.urls),
            len(held),
            holdout,
        )

    def _check_readable(self, urls: list[str]) -> None:
        """One clear error now rather than endless empty epochs later: reads shards until
        one member gives a crop (normally the first member of the first shard)."""
        for url in urls:
            for _ in self._members(url, np.random.default_rng(0), (_CROP, -1)):
                return
        raise DataError(
            f"Shards: no readable audio member ({', '.join(self.extensions)}) in any of the "
            f"{len(urls)} shard(s) of {urls[0]}..."
            if len(urls) > 1
            else f"Shards: no readable audio member ({', '.join(self.extensions)}) in {urls[0]}"
        )

    def resume(self, start: int) -> Shards:
        """This stream for a run resumed after ``start`` micro-batches per process: epoch
        orders and crops are reseeded by ``start`` (nothing is replayed or skipped)."""
        other = copy.copy(self)
        other.start = int(start)
        return other

    def held_out(self, path: str | None = None) -> Dataset[torch.Tensor]:
        """Items never drawn for training, for demos and validation (a map-style dataset:
        item n depends on (seed, n) and the shards only): crops of the first
        ``held_members`` samples of the held-out shards, or of the shards ``path`` names (a
        pattern), or of every audio file under ``path`` when it is a folder. Without held-out
        shards, of the training shards."""
        if path is not None and os.path.isdir(os.path.expanduser(str(path))):
            d = AudioDir(
                str(path),
                self.sample_rate,
                self.channels,
                self.sample_size,
                self.seed,
                self.extensions,
                self.silence_db,
                self.max_tries,
                holdout=0,
            )
            return d.held_out()
        urls = shard_urls(path) if path is not None else self.held_out_urls or self.urls
        log.info(
            "Shards: held-out crops (demos, validation) from %d shard(s) of %s",
            len(urls),
            path or ("the held-out shards" if self.held_out_urls else "the training shards"),
        )
        return HeldOutShards(self, urls)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for member in self.samples():
            yield member.audio

    def readers(self) -> tuple[int, int]:
        """(this reader's number, the number of readers): processes x DataLoader workers."""
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.rank * workers + worker, self.world * workers

    def samples(self) -> Iterator[Member]:
        """This reader's endless stream of crops, epoch after epoch."""
        for epoch in itertools.count():
            count = 0
            for member in self.epoch(epoch):
                count += 1
                yield member
            if count == 0:
                reader, readers = self.readers()
                raise DataError(
                    f"Shards: reader {reader} of {readers} got no readable audio from its "
                    f"shard(s) in epoch {epoch} (see the warnings)"
                )

    def epoch(self, epoch: int) -> Iterator[Member]:
        """This reader's crops of one epoch: its share of the shards in the epoch's order,
        through the shuffle buffer."""
        reader, readers = self.readers()
        order = np.random.default_rng((self.seed, _ORDER, self.start, epoch))
        shards = [self.urls[i] for i in order.permutation(len(self.urls))]
        if len(shards) >= readers:
            mine, every = shards[reader::readers], None
        else:  # fewer shards than readers: all read everything, keeping every R-th sample
            mine, every = shards, (reader, readers)
        rng = np.random.default_rng((self.seed, _SHUFFLE, self.start, reader, epoch))
        yield from _shuffled(self._epoch(mine, epoch, every), self.shuffle, rng)

    def _epoch(self, shards: list[str], epoch: int, every: tuple[int, int] | None):
        n = 0
        for url in shards:
            stream = (self.start, epoch, self._index[url])
            yield from self._members(url, None, stream, every, n)
            if every is not None:
                n += self._count.get(url, 0)

    def _members(
        self,
        url: str,
        rng: np.random.Generator | None,
        stream: tuple,
        every: tuple[int, int] | None = None,
        first: int = 0,
    ) -> Iterator[Member]:
        """Crops of the samples of one shard; problems are warnings naming shard and member.
        Crop k of sample j is seeded by (seed, stream, j, k) unless ``rng`` is given."""
        j = -1
        try:
            for j, sample in enumerate(_samples(url)):
                if every is not None and (first + j) % every[1] != every[0]:
                    continue
                for k in range(self.crops):
                    gen = rng or np.random.default_rng((self.seed, _CROP, *stream, j, k))
                    member = self._crop(url, sample, gen)
                    if member is None:
                        break
                    yield member
        except _READ_ERRORS as e:
            self._warn(
                f"shard:{url}",
                f"Shards: skipping the rest of shard {url} after {j + 1} sample(s): cannot read "
                f"it ({_reason(e)})",
            )
        self._count[url] = j + 1

    def _crop(self, url: str, sample: dict, rng: np.random.Generator) -> Member | None:
        key = sample["__key__"]
        suffix = next((s for s in sample if s.rsplit(".", 1)[-1] in self.extensions), None)
        if suffix is None:
            return None  # no audio in this sample (e.g. a lone .json)
        name = f"{url}:{key}.{suffix}"
        data = sample[suffix]
        try:
            with sf.SoundFile(io.BytesIO(data)) as f:
                file = _File(name, f.frames, f.samplerate, f.channels)
            if file.frames <= 0 or file.sample_rate <= 0 or file.channels <= 0:
                raise RuntimeError("no audio frames")
            threshold = 10.0 ** (self.silence_db / 20.0)
            shape = (self.sample_rate, self.channels, self.sample_size)

            def warn(kind: str, message: str) -> None:  # once per member and kind
                self._warn(f"{name}|{kind}", message.replace("AudioDir:", "Shards:", 1))

            for _ in range(self.max_tries):
                audio, random_offset = read_crop(io.BytesIO(data), file, shape, rng, warn)
                if audio.abs().max().item() >= threshold:
                    return Member(audio, url, key, _metadata(sample, name, self._warn))
                if not random_offset:
                    break
            return None  # silent: skipped like AudioDir's silent files
        except (RuntimeError, OSError) as e:
            self._warn(name, f"Shards: skipping member {key}.{suffix} of {url}: {_reason(e)}")
            return None

    def _warn(self, what: str, message: str) -> None:
        if what not in self._warned:  # per reader (each DataLoader worker has its own copy)
            self._warned.add(what)
            warnings.warn(message, InputWarning, stacklevel=2)


class HeldOutShards(Dataset[torch.Tensor]):
    """Map-style crops of the first ``held_members`` samples of ``urls`` (kept undecoded in
    memory, read on first use): item n crops sample ``perm_e[n % count]`` of epoch
    e = n // count, seeded by (seed, n)."""

    def __init__(self, shards: Shards, urls: list[str]) -> None:
        self.shards, self.urls = shards, urls
        self.held_out_names: list[str] = []
        self._samples: list[tuple[str, dict]] | None = None

    def _load(self) -> list[tuple[str, dict]]:
        if self._samples is None:
            limit, found = self.shards.held_members, []
            for url in self.urls:
                try:
                    for sample in _samples(url):
                        found.append((url, sample))
                        if len(found) >= limit:
                            break
                except _READ_ERRORS as e:
                    self.shards._warn(f"shard:{url}", f"Shards: cannot read {url}: {_reason(e)}")
                if len(found) >= limit:
                    break
            if not found:
                raise DataError(f"Shards: no held-out samples readable in {', '.join(self.urls)}")
            self._samples = found
        return self._samples

    def __len__(self) -> int:
        return len(self._load())

    def __getitem__(self, n: int) -> torch.Tensor:
        samples = self._load()
        epoch, pos = divmod(int(n), len(samples))
        perm = np.random.default_rng((self.shards.seed, _HELD_ORDER, epoch)).permutation(
            len(samples)
        )
        for j in range(len(samples)):
            url, sample = samples[int(perm[(pos + j) % len(samples)])]
            rng = np.random.default_rng((self.shards.seed, _HELD_CROP, int(n), j))
            member = self.shards._crop(url, sample, rng)
            if member is not None:
                return member.audio
        raise DataError(f"Shards: draw {n}: no usable held-out crop in {', '.join(self.urls)}")


def _samples(url: str) -> Iterator[dict]:
    """The samples of one tar shard, as webdataset groups them ({"__key__", suffix: bytes})."""
    stream = gopen(url)
    try:
        yield from group_by_keys(
            tar_file_expander([{"url": url, "stream": stream}], eof_value=None)
        )
    finally:
        stream.close()


def _shuffled(items: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    """A shuffle buffer of ``size`` items (as webdataset's): fill, then yield a random one and
    put the next item in its place; at the end, the rest in random order."""
    if size <= 1:
        yield from items
        return
    buffer = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        i = int(rng.integers(size))
        yield buffer[i]
        buffer[i] = item
    for i in rng.permutation(len(buffer)):
        yield buffer[int(i)]


def _metadata(sample: dict, name: str, warn) -> dict:
    raw = sample.get("json")
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        warn(f"json:{name}", f"Shards: ignoring unparsable metadata of {name}: {e}")
        return {}
    return value if isinstance(value, dict) else {"json": value}


def _reason(error: Exception) -> str:
    text = str(getattr(error, "error_string", None) or error)
    return text.splitlines()[0] if text else type(error).__name__
