"""Audio manifests: what ``soundfile.info`` says about every file of a folder, scanned once.

A manifest is a JSON Lines file, one object per audio file found under the folder
(``find_audio``), sorted by path:

    {"path": "a/b.flac", "frames": 441000, "sample_rate": 44100, "channels": 2,
     "duration": 10.0, "size": 1234567, "mtime_ns": 1700000000000000000}

``path`` is relative to the folder ("/" separators), ``duration`` = frames / sample_rate
seconds, ``size`` and ``mtime_ns`` are the file's at scan time (how a cached manifest notices a
changed file). A file that cannot be used is a line with ``error`` instead of the audio fields
(unreadable, or no audio frames), so a manifest lists its failures too.

``scan`` probes the files in a process pool (by default one process per CPU, from 4 CPUs), and
with ``known`` entries only the files that are new or whose size or mtime changed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import soundfile as sf

from audioae.errors import AudioAEError


class DataError(AudioAEError, ValueError):
    """Data that cannot be used: no usable files, or no usable crop within the try budget."""


class MissingDataError(DataError, FileNotFoundError):
    """The data folder does not exist."""


EXTENSIONS = ("wav", "flac", "ogg", "mp3")  # searched by default


def find_audio(root: str, extensions: Sequence[str] = EXTENSIONS) -> list[str]:
    """Regular files under root whose extension (case-insensitive) is listed; hidden names
    skipped; symlinked folders followed once; sorted by relative path (audioae.files.walk:
    a pipe, socket or device is skipped with a warning naming it)."""
    from audioae.files import walk

    wanted = {e.lower().lstrip(".") for e in extensions}
    return walk(root, lambda name: os.path.splitext(name)[1][1:].lower() in wanted)


CACHE_NAME = ".audioae-manifest.jsonl"  # AudioDir's own manifest, in the data folder
_PARALLEL_FROM = 512  # files to probe before processes pay for their start


class ManifestError(AudioAEError, ValueError):
    """A manifest file that cannot be read."""


@dataclass(frozen=True)
class Entry:
    """One file of a manifest; ``error`` is set (and frames etc. are 0) when it is unusable."""

    path: str
    size: int
    mtime_ns: int
    frames: int = 0
    sample_rate: int = 0
    channels: int = 0
    duration: float = 0.0
    error: str | None = None

    def to_json(self) -> str:
        record = asdict(self)
        if self.error is None:
            del record["error"]
        else:
            for key in ("frames", "sample_rate", "channels", "duration"):
                del record[key]
        return json.dumps(record, sort_keys=False)


def _reason(error: Exception) -> str:
    # LibsndfileError's own message repeats the path; its error_string is just the cause.
    return str(getattr(error, "error_string", None) or error)


def probe(root: str, name: str, stat: os.stat_result | None = None) -> Entry:
    """The entry of file ``name`` (relative to ``root``)."""
    path = os.path.join(root, name)
    try:
        stat = stat or os.stat(path)
        info = sf.info(path)
    except (RuntimeError, OSError) as e:  # LibsndfileError is a RuntimeError
        size, mtime = (stat.st_size, stat.st_mtime_ns) if stat else (0, 0)
        return Entry(name, size, mtime, error=f"unreadable: {_reason(e)}")
    if info.frames <= 0 or info.samplerate <= 0 or info.channels <= 0:
        return Entry(name, stat.st_size, stat.st_mtime_ns, error="empty (no audio frames)")
    return Entry(
        name,
        stat.st_size,
        stat.st_mtime_ns,
        frames=info.frames,
        sample_rate=info.samplerate,
        channels=info.channels,
        duration=info.frames / info.samplerate,
    )


def scan(
    root: str,
    names: Sequence[str],
    workers: int | None = None,
    known: Iterable[Entry] = (),
) -> tuple[list[Entry], int]:
    """Entries of ``names`` (relative to ``root``), in that order, probed by ``workers``
    processes (default: one per CPU; one with under 4 CPUs or 512 files). An entry of
    ``known`` with the same path, size and mtime is reused without opening the file. Returns the
    entries and how many were probed."""
    cached = {e.path: e for e in known}
    entries: list[Entry | None] = [None] * len(names)
    todo: list[tuple[int, str, os.stat_result | None]] = []
    for i, name in enumerate(names):
        try:
            stat = os.stat(os.path.join(root, name))
        except OSError:
            stat = None
        old = cached.get(name)
        if (
            old is not None
            and stat is not None
            and (old.size, old.mtime_ns)
            == (
                stat.st_size,
                stat.st_mtime_ns,
            )
        ):
            entries[i] = old
        else:
            todo.append((i, name, stat))
    if todo:
        for (i, _, _), entry in zip(todo, _probe_all(root, todo, workers), strict=True):
            entries[i] = entry
    return entries, len(todo)  # type: ignore[return-value]


def _probe_chunk(root: str, chunk: list[tuple[int, str, os.stat_result | None]]) -> list[Entry]:
    return [probe(root, name, stat) for _, name, stat in chunk]


def _probe_all(
    root: str, todo: list[tuple[int, str, os.stat_result | None]], workers: int | None
) -> list[Entry]:
    """Entries of ``todo`` in order: in this process when there are few, else by ``workers``
    processes (default: the CPUs this process may use), in chunks. Processes, not threads:
    soundfile's header parsing holds the GIL for most of its time (threads measured no faster
    than one on 2 cores)."""
    if workers is None:  # below 4 CPUs, process start-up and pickling cost more than they save
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        workers = cpus if cpus >= 4 else 1
    if workers <= 1 or len(todo) < _PARALLEL_FROM:
        return _probe_chunk(root, todo)
    size = max(64, min(1024, len(todo) // (4 * workers) + 1))
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    # fork where the platform has it: the children need nothing but soundfile and os
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=context) as pool:
        return [e for part in pool.map(_probe_chunk, [root] * len(chunks), chunks) for e in part]


def write(path: str | Path, entries: Iterable[Entry]) -> None:
    """Write a manifest atomically (a temporary file beside it, then a rename: processes
    that write the same cache at once leave one whole file)."""
    from audioae.files import atomic_write

    with atomic_write(Path(path)) as tmp:
        tmp.write_text("".join(e.to_json() + "\n" for e in entries))


def read(path: str | Path) -> list[Entry]:
    """The entries of a manifest file; a bad line is a ManifestError naming file and line."""
    entries = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise ManifestError(f"manifest {path}: cannot read it ({e.strerror or e})") from None
    fields = set(Entry.__dataclass_fields__)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not {"path"} <= record.keys() <= fields:
                raise ValueError(f"unexpected keys {sorted(record)}")
            record.setdefault("size", 0)
            record.setdefault("mtime_ns", 0)
            if record.get("error") is None and not {"frames", "sample_rate", "channels"} <= set(
                record
            ):
                raise ValueError("needs frames, sample_rate and channels (or error)")
            entries.append(Entry(**record))
        except (ValueError, TypeError) as e:
            raise ManifestError(f"manifest {path}, line {number}: {e}") from None
    return entries


def build_manifest(root: str, extensions: Sequence[str], workers: int | None = None) -> list[Entry]:
    """Entries of every audio file under ``root`` (``find_audio``), probed in parallel."""
    names = [os.path.relpath(p, root).replace(os.sep, "/") for p in find_audio(root, extensions)]
    return scan(root, names, workers)[0]


def make_manifest(
    root: str | Path,
    out: str | Path,
    extensions: Sequence[str],
    workers: int | None = None,
    force: bool = False,
) -> list[Entry]:
    """Scan ``root`` and write its manifest to ``out`` (refused, before scanning, when ``out``
    exists and not ``force``, or its folder is not writable); returns the entries, failures
    (``error`` set) included."""
    from audioae.files import check_new, check_writable

    out, root = Path(out), str(os.path.expanduser(root))
    check_new([out], force)
    check_writable(out.parent)
    if not os.path.isdir(root):
        raise MissingDataError(f"{root}: not a folder")
    entries = build_manifest(root, extensions, workers)
    write(out, entries)
    return entries
