"""The files the commands read and write. Inputs used with a change are an InputWarning.
The output rule of every command: an existing file is never overwritten without --force
(checked before any computing, `check_new`), the output folder must be writable (also checked
first, `check_writable`), and every file is written atomically (`atomic_write`: a temporary
file in the same folder, then os.replace), so that an interrupted command never leaves a half
file under the final name."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from audioae.errors import AudioAEError


class InputWarning(UserWarning):
    """An input file used with a change the user should know of (truncated, channels dropped,
    skipped); the commands print each as one line `PROG: warning: ...`."""


def check_new(paths: Iterable[Path], force: bool) -> None:
    """Fail, naming the first one, when any of `paths` exists and `force` is not set."""
    existing = [Path(p) for p in paths if Path(p).exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise AudioAEError(f"{existing[0]} exists{more}; --force overwrites")


def check_writable(folder: Path) -> None:
    """Fail when `folder` (or, where it does not exist yet, its nearest existing parent, in
    which it would be created) is not a writable folder."""
    folder = Path(os.path.abspath(folder))
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        where = "" if probe == folder else f" ({probe}, in which it would be created)"
        raise AudioAEError(f"{folder}: not a folder{where}")
    try:  # by trying: os.access misses read-only mounts, and root passes it everywhere
        tempfile.TemporaryFile(dir=probe).close()
    except OSError as e:
        raise AudioAEError(f"{folder}: cannot write in {probe} ({e.strerror or e})") from None


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same ending, so that writers choosing a format by
    it still do); on success it replaces `path`, on any failure it is removed."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: Path, text: str) -> None:
    """Path.write_text, atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)
