"""Random crops of the audio files under a folder, with bounded, loud failure handling.

Item n is a pure function of ``(seed, n)`` and the files: draw n lies in epoch ``n // num_files``,
whose file order is a seeded permutation, and its crop offset comes from a generator seeded with
the draw number. Only the frames a crop needs are decoded.

Held-out files (``holdout``) are split off by a hash of each file's relative path, so a file's
side depends on its own name only and stays put when files are added; the training items never
come from them, and ``held_out()`` gives crops of them alone (for demos and validation).

Unlike stable-audio-tools' ``SampleDataset`` (reference §8 and §11 item 30), a silent crop or a
file that fails to decode never recurses into a random other item: there is a fixed budget of
crops and files per draw, then a ``DataError`` that says what was tried. Every file problem
(unreadable, empty, vanished, non-finite samples, ambiguous channel mapping) is reported once by
a warning that names the file, instead of being printed and skipped or passed silently. There is
no phase-flip augmentation (the reference cannot turn it off); that belongs in the trainer.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset
from torchaudio.functional import resample

from audioae.data import manifest as manifests
from audioae.data.manifest import EXTENSIONS, DataError, MissingDataError, find_audio
from audioae.files import InputWarning, special_kind

log = logging.getLogger(__name__)

# Independent random streams per purpose, so a permutation seed never equals a crop seed, and
# held-out draws (demos, validation) never repeat a training draw, even of the same files.
_PERMUTATION, _CROP, _HELD_PERMUTATION, _HELD_CROP, _PICK, _HELD_PICK = 0, 1, 2, 3, 4, 5
# Weighted picks per draw (with replacement): the candidates tried before a DataError.
_WEIGHTED_CANDIDATES = 4
# torchaudio's default resampling kernel reaches this many zero crossings on each side.
_RESAMPLE_ZEROS = 6
# Largest read-start alignment (frames) worth its extra decoding; see AudioDir._crop.
_MAX_ALIGN = 8192


class _File(NamedTuple):
    path: str
    frames: int
    sample_rate: int
    channels: int


def holdout_key(name: str) -> float:
    """A file's place in [0, 1) for the held-out split: the first 8 bytes of the SHA-256 of its
    path relative to the data folder (UTF-8, "/" separators), as a fraction of 2**64."""
    digest = hashlib.sha256(name.replace(os.sep, "/").encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_holdout(names: Sequence[str], holdout: float) -> set[str]:
    """The held-out subset of ``names`` (relative paths), by ``holdout_key``:

    - a float 0 < f < 1: every file whose key is below f; with two files or more, at least
      the one with the lowest key is held out and at least the one with the highest trains;
    - an int k >= 1: the k files with the lowest keys (k must be below the number of files);
    - 0: none.

    A fraction's membership depends on each file's own name, so adding files never moves a
    file between the sides, unless one of the two guarantees decided it (no key below f, or
    every key below f: tiny folders).
    """
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)):
        raise DataError(f"AudioDir: holdout must be a fraction or a file count, got {holdout!r}")
    if holdout < 0 or (isinstance(holdout, float) and holdout >= 1):
        raise DataError(
            f"AudioDir: holdout={holdout}: use a fraction 0 <= f < 1 or a file count >= 1 "
            "(an integer)"
        )
    by_key = sorted(names, key=holdout_key)
    if isinstance(holdout, int):
        if holdout and holdout >= len(by_key):
            raise DataError(
                f"AudioDir: holdout={holdout} files would leave none of the {len(by_key)} "
                "for training; lower it (or give a fraction)"
            )
        return set(by_key[:holdout])
    if holdout == 0 or len(by_key) < 2:
        return set()
    held = {name for name in by_key if holdout_key(name) < holdout}
    held.add(by_key[0])
    held.discard(by_key[-1])
    return held


def _usable(
    path: str,
    extensions: tuple[str, ...],
    manifest: str | None = None,
    cache: bool = False,
    workers: int | None = None,
) -> list[_File]:
    """The readable, non-empty audio files under ``path``, each problem warned about once.

    With ``manifest`` (data/manifest.py), its entries are trusted as they are (no folder walk,
    no file opened: a million files start in seconds); with ``cache``, the folder is walked and
    only files new since ``path/.audioae-manifest.jsonl`` or changed in size or mtime are
    probed, and the cache is rewritten when anything changed (skipped with a warning when the
    folder is read-only)."""
    root = os.path.expanduser(path)
    if not os.path.exists(root):
        raise MissingDataError(f"AudioDir: data folder not found: {path}")
    if not os.path.isdir(root):
        raise DataError(f"AudioDir: data path is not a folder: {path}")
    wanted = {e.lower() for e in extensions}
    if manifest is not None:
        if not os.path.isfile(os.path.expanduser(manifest)):
            raise MissingDataError(f"AudioDir: manifest not found: {manifest}")
        entries = [
            e
            for e in manifests.read(os.path.expanduser(manifest))
            if os.path.splitext(e.path)[1][1:].lower() in wanted
        ]
        log.info("AudioDir: %d file(s) of %s listed in %s", len(entries), path, manifest)
    else:
        names = [os.path.relpath(p, root).replace(os.sep, "/") for p in find_audio(root, wanted)]
        cache_file = os.path.join(root, manifests.CACHE_NAME)
        known = []
        if cache and os.path.isfile(cache_file):
            try:
                known = manifests.read(cache_file)
            except manifests.ManifestError as e:
                warnings.warn(f"AudioDir: ignoring a bad cache ({e}); rescanning", stacklevel=3)
        entries, probed = manifests.scan(root, names, workers, known)
        log.info("AudioDir: %d of %d file(s) under %s probed", probed, len(entries), path)
        if cache and (probed or len(known) != len(entries)):
            try:
                manifests.write(cache_file, entries)
            except OSError as e:
                warnings.warn(
                    f"AudioDir: cannot cache the scan in {cache_file} ({e.strerror or e}); "
                    "the next start scans again (data.manifest=PATH: audioae-manifest)",
                    stacklevel=3,
                )
    files = []
    for e in entries:
        file = os.path.join(root, e.path)
        if e.error is not None:
            if e.error.startswith("empty"):
                message = f"AudioDir: skipping empty file {file} (no audio frames)"
            else:
                message = f"AudioDir: skipping unreadable file {file}: " + e.error.removeprefix(
                    "unreadable: "
                )
            warnings.warn(message, InputWarning, stacklevel=3)
            continue
        files.append(_File(file, e.frames, e.sample_rate, e.channels))
    if not files:
        where = f"listed in {manifest}" if manifest is not None else "found"
        raise DataError(
            f"AudioDir: no usable audio in {path}: {len(entries)} file(s) {where} with "
            f"extensions {', '.join(extensions)} (searched recursively, hidden names "
            f"skipped), all {len(entries)} unreadable or empty"
        )
    return files


def _reason(error: Exception) -> str:
    # LibsndfileError's own message repeats the path; its error_string is just the cause.
    return str(getattr(error, "error_string", None) or error)


class AudioDir(Dataset[torch.Tensor]):
    """Crops of the audio files found recursively under ``path``.

    Item n is a float32 tensor (channels, sample_size) in [-1, 1]: a crop of ``sample_size``
    samples at ``sample_rate`` (resampled from the file's rate), zero-padded at the end when the
    file is shorter. Channel rule, from the file's count F to ``channels`` C:

    - F == C: kept; C == 1: mean of the F channels; F == 1: repeated C times;
    - F > C > 1: the first C channels are kept (a downmix to C > 1 channels is ambiguous);
    - 1 < F < C: the channels are tiled cyclically (L R L R ...).

    The last two warn once per file. Non-finite samples become 0 (one warning per file). A crop
    whose peak is below ``silence_db`` dBFS is rejected and another crop of the same file is
    drawn, up to ``max_tries`` crops; then the next file of the epoch's order is tried, up to
    ``max_tries`` files, and after that a ``DataError`` is raised. A file that fails to decode
    is warned about, remembered as bad (per worker) and skipped.

    Args:
        path: folder, searched recursively; hidden files and folders are skipped.
        sample_rate, channels, sample_size: the shape of the items.
        seed: >= 0; item n depends on (seed, n) and the files only.
        extensions: file extensions searched, without dots, any case.
        silence_db: crops with a lower peak level (dBFS) are rejected.
        max_tries: crops per file and files per draw before giving up.
        holdout: files kept out of training (``split_holdout``): a fraction 0 <= f < 1 or a
            count >= 1; 0 keeps none. Items never come from them; ``held_out()`` does.
        manifest: a manifest of ``path`` (``audioae-manifest``, data/manifest.py), trusted
            as is: no folder walk, no file opened at start-up.
        cache_manifest: without ``manifest``, keep the scan in ``path/.audioae-manifest.jsonl``
            and at the next start probe only files new or changed (size, mtime) since.
        weight_by_duration: draw each file with probability proportional to its duration
            (frames / sample rate) instead of once per epoch in a seeded order.
    """

    def __init__(
        self,
        path: str,
        sample_rate: int,
        channels: int,
        sample_size: int,
        seed: int = 0,
        extensions: Sequence[str] = EXTENSIONS,
        silence_db: float = -60.0,
        max_tries: int = 10,
        holdout: float = 0,
        manifest: str | None = None,
        cache_manifest: bool = False,
        weight_by_duration: bool = False,
    ) -> None:
        if sample_rate < 1 or channels < 1 or sample_size < 1 or seed < 0 or max_tries < 1:
            raise ValueError(
                f"AudioDir: need sample_rate, channels, sample_size and max_tries >= 1 and "
                f"seed >= 0; got {sample_rate}, {channels}, {sample_size}, {max_tries}, {seed}"
            )
        self.path = str(path)
        self.sample_rate = sample_rate
        self.channels = channels
        self.sample_size = sample_size
        self.seed = seed
        self.extensions = tuple(sorted({str(e).lower().lstrip(".") for e in extensions}))
        self.silence_db = float(silence_db)
        self.max_tries = max_tries
        self.holdout = holdout
        self.weight_by_duration = bool(weight_by_duration)

        root = os.path.expanduser(self.path)
        usable = _usable(self.path, self.extensions, manifest, cache_manifest)
        prefix = os.path.join(root, "")  # _usable joins root and the relative name: strip it

        def relative(path: str) -> str:  # os.path.relpath is 60 us a file: 1 min per million
            name = path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, root)
            return name.replace(os.sep, "/")

        names = {f.path: relative(f.path) for f in usable}
        held = split_holdout(list(names.values()), holdout)
        self.files: list[_File] = [f for f in usable if names[f.path] not in held]
        self.held_out_files: list[_File] = [f for f in usable if names[f.path] in held]
        # What is kept out of training, as paths relative to ``path`` (e.g. for a run's records).
        self.held_out_names: list[str] = sorted(held)
        log.info(
            "AudioDir: %d file(s) under %s: %d for training, %d held out (holdout=%s)",
            len(usable),
            self.path,
            len(self.files),
            len(held),
            holdout,
        )
        self._streams = (_PERMUTATION, _CROP, _PICK)
        self._reset()

    def _reset(self) -> None:
        # Per-process state: each DataLoader worker warns once per file problem on its own.
        self._bad: set[int] = set()
        self._warned: set[tuple[int, str]] = set()
        self._perm_epoch, self._perm = -1, np.empty(0, dtype=np.int64)
        # duration-weighted picks: cumulative durations (s), a file's share of the total
        seconds = np.array([f.frames / f.sample_rate for f in self.files], dtype=np.float64)
        self._cumulative = np.cumsum(seconds)

    def held_out(self, path: str | None = None) -> AudioDir:
        """Items never drawn for training, for demos and validation: crops of the held-out
        files, or of every file under ``path`` (a held-out folder) when given. Without held-out
        files (``holdout=0``, or a folder of one file) they are crops of the training files;
        their random streams differ from training's either way. Item n depends on
        (seed, n) and the files only, as for training."""
        other = copy.copy(self)
        if path is not None:
            other.path, other.files = str(path), _usable(str(path), self.extensions)
            where = f"every file under {path}"
        elif self.held_out_files:
            other.files = list(self.held_out_files)
            where = f"the {len(other.files)} held-out file(s) of {self.path}"
        else:
            where = f"the training files of {self.path} (holdout={self.holdout} holds none out)"
        log.info("AudioDir: held-out crops (demos, validation) from %s", where)
        other.held_out_files, other.held_out_names = [], []
        other._streams = (_HELD_PERMUTATION, _HELD_CROP, _HELD_PICK)
        other._reset()
        return other

    def __len__(self) -> int:
        # Unbounded in fact (epochs repeat with new orders); a finite number for samplers that ask.
        return sys.maxsize // 2

    def __getitem__(self, n: int) -> torch.Tensor:
        n = int(n)
        if n < 0:
            raise IndexError(f"AudioDir: draw number must be >= 0, got {n}")
        num = len(self.files)
        threshold = 10.0 ** (self.silence_db / 20.0)
        files_tried = 0
        for j, index in enumerate(self.candidates(n)):
            if index in self._bad:
                continue
            # One stream per (draw, candidate): skipping a file known to be bad in this worker
            # draws the same crops for the next candidate as reading and failing it would.
            rng = np.random.default_rng((self.seed, self._streams[1], n, j))
            for _ in range(self.max_tries):
                crop = self._crop(index, rng)
                if crop is None:  # failed to decode; now marked bad
                    break
                audio, random_offset = crop
                if audio.numel() and audio.abs().max().item() >= threshold:
                    return audio
                if not random_offset:  # the only crop of a short file
                    break
            files_tried += 1
            if files_tried >= self.max_tries:
                break
        raise DataError(
            f"AudioDir: draw {n}: no crop above {self.silence_db} dBFS in {files_tried} file(s) "
            f"tried (up to {self.max_tries} crops each) in {self.path}; "
            f"{len(self._bad)} of {num} file(s) failed to decode"
        )

    def candidates(self, n: int) -> Iterator[int]:
        """The files draw n tries, in order (indices into ``files``): the next files of its
        epoch's seeded order, or, with ``weight_by_duration``, files drawn with probability
        proportional to their duration from a generator of (seed, n)."""
        num = len(self.files)
        if not self.weight_by_duration:
            epoch, pos = divmod(n, num)
            perm = self._permutation(epoch)
            return (int(perm[(pos + j) % num]) for j in range(num))  # lazily: num may be 10**6
        rng = np.random.default_rng((self.seed, self._streams[2], n))
        count = min(num, _WEIGHTED_CANDIDATES * self.max_tries)
        u = rng.random(count) * self._cumulative[-1]
        picks = np.searchsorted(self._cumulative, u, side="right")
        return iter(np.minimum(picks, num - 1).tolist())

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:  # consecutive draws share an epoch: keep the last one
            rng = np.random.default_rng((self.seed, self._streams[0], epoch))
            self._perm_epoch, self._perm = epoch, rng.permutation(len(self.files))
        return self._perm

    def _warn_once(self, index: int, kind: str, message: str) -> None:
        if (index, kind) not in self._warned:
            self._warned.add((index, kind))
            warnings.warn(message, InputWarning, stacklevel=3)

    def _crop(self, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, bool] | None:
        """A (channels, sample_size) crop of file ``index`` and whether its offset was random;
        None if the file fails to decode."""
        file = self.files[index]
        try:
            if special := special_kind(file.path):  # listed as audio, now a pipe: reading blocks
                raise OSError(f"{special}, not a regular file")
            return read_crop(
                file.path,
                file,
                (self.sample_rate, self.channels, self.sample_size),
                rng,
                lambda kind, message: self._warn_once(index, kind, message),
            )
        except (RuntimeError, OSError) as e:
            self._bad.add(index)
            self._warn_once(
                index,
                "decode",
                f"AudioDir: skipping {file.path}: cannot decode it now "
                f"({_reason(e)}); it is treated as missing from here on",
            )
            return None


def read_crop(
    source,
    file: _File,
    shape: tuple[int, int, int],
    rng: np.random.Generator,
    warn: Callable[[str, str], None],
) -> tuple[torch.Tensor, bool]:
    """A (channels, sample_size) crop of ``source`` (a path or a file object soundfile reads,
    described by ``file``: its name, frames, rate and channels) and whether its offset was
    random, by AudioDir's rules; ``shape`` is (sample_rate, channels, sample_size). File
    problems are passed to ``warn(kind, message)``; a decoding failure raises (RuntimeError or
    OSError)."""
    sample_rate, channels, size = shape
    with sf.SoundFile(source) as f:
        listed = file
        file = _File(file.path, f.frames, f.samplerate, f.channels)
        if file != listed:  # rewritten since the scan or manifest: its real rate is the pitch
            warn(
                "changed",
                f"AudioDir: {file.path} changed since it was listed: now {file.frames} frames at "
                f"{file.sample_rate} Hz, {file.channels} channel(s) (listed: {listed.frames} at "
                f"{listed.sample_rate} Hz, {listed.channels}); read as it is now",
            )
        rate, out_rate = file.sample_rate, sample_rate
        # The offset is drawn in output samples over the resampled file's length. Reading
        # starts a kernel's reach early (so the crop's edges are filtered like its middle), at a
        # frame that is a multiple of rate / gcd: there the output grid of the excerpt coincides
        # with that of the whole file, so a crop equals the same window of the resampled file.
        total = math.ceil(file.frames * out_rate / rate)
        random_offset = total > size
        offset = int(rng.integers(0, total - size + 1)) if random_offset else 0
        reach, step = 0, 1
        if rate != out_rate:
            reach = math.ceil(_RESAMPLE_ZEROS * rate / (0.99 * min(rate, out_rate))) + 1
            step = rate // math.gcd(rate, out_rate)
            step = step if step <= _MAX_ALIGN else 1  # odd rate pairs: sub-sample grid shift
        start = max(math.floor(offset * rate / out_rate) - reach, 0) // step * step
        stop = math.ceil((offset + size) * rate / out_rate) + reach
        if start:
            f.seek(start)
        data = f.read(max(0, min(stop, file.frames) - start), dtype="float32", always_2d=True)
    if not np.isfinite(data).all():
        warn("finite", f"AudioDir: {file.path} has NaN/inf samples; they are set to 0")
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    audio = torch.from_numpy(np.ascontiguousarray(data.T))
    audio = _map_channels(audio, channels, file.path, warn)
    if rate != sample_rate:
        audio = resample(audio, rate, sample_rate)
    first = offset - round(start * out_rate / rate)  # exact when step aligns the grids
    audio = audio[:, first : first + size]
    if audio.shape[1] < size:
        audio = torch.nn.functional.pad(audio, (0, size - audio.shape[1]))
    if audio.shape[0] < channels:  # mono to C: repeated after the resampling
        audio = audio.expand(channels, -1)
    over = audio.abs() > 1.0
    if over.any():  # the model would learn a clipped target without a word
        warn(
            "clip",
            f"AudioDir: {file.path} goes beyond full scale (peak {audio.abs().max().item():.3g}): "
            f"{over.float().mean().item():.2%} of a crop's samples clipped to [-1, 1]",
        )
    return audio.clamp(-1.0, 1.0), random_offset


def _map_channels(
    audio: torch.Tensor, want: int, path: str, warn: Callable[[str, str], None]
) -> torch.Tensor:
    """(F, L) -> (C, L) by the rule in AudioDir's docstring; a mono result for C > 1 is
    left as (1, L) and repeated after resampling."""
    have = audio.shape[0]
    if have == want or have == 1:
        return audio
    if want == 1:
        return audio.mean(dim=0, keepdim=True)
    if have > want:
        warn(
            "channels",
            f"AudioDir: {path} has {have} channels; keeping "
            f"the first {want} (a downmix is ambiguous)",
        )
        return audio[:want]
    warn("channels", f"AudioDir: {path} has {have} channels; tiling them to {want}")
    return audio[torch.arange(want) % have]
