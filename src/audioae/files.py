"""The files the commands read and write. Inputs used with a change are an InputWarning.
The output rule of every command: an existing file is never overwritten without --force
(checked before any computing, `check_new`), the output folder must be writable (also checked
first, `check_writable`), and every file is written atomically (`atomic_write`: a temporary
file in the same folder, then os.replace), so that an interrupted command never leaves a half
file under the final name; an error while writing names the final path, never the temporary.

The input rule of every command that searches folders (`walk`): only regular files are read;
a named pipe, socket or device is skipped with a warning naming it, since opening a pipe that
no one writes to blocks for ever.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from audioae.errors import AudioAEError


class InputWarning(UserWarning):
    """An input file used with a change the user should know of (truncated, channels dropped,
    skipped); the commands print each as one line `PROG: warning: ...`."""


def special_kind(path: str | Path) -> str | None:
    """What `path` is when it exists and is neither a regular file nor a folder (after
    symlinks): "a named pipe", "a socket", "a character device", "a block device"; else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kinds = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))  # fmt: skip
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def walk(root: str, keep: Callable[[str], bool]) -> list[str]:
    """The regular files under `root` whose name `keep` accepts: hidden names skipped, symlinked
    folders followed once, sorted by relative path. Any other kind of file (a pipe, socket or
    device) with a wanted name is skipped with an InputWarning naming it."""
    found, seen = [], set()
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a symlink cycle
            dirs.clear()
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith(".") or not keep(name):
                continue
            path = os.path.join(folder, name)
            if kind := special_kind(path):
                warnings.warn(f"{path}: {kind}, not a regular file; skipped", InputWarning, 2)
                continue
            found.append(path)
    return sorted(found, key=lambda p: os.path.relpath(p, root))


def check_new(paths: Iterable[Path], force: bool) -> None:
    """Fail, naming the first one, when any of `paths` exists and `force` is not set, or is a
    folder or another non-file (which no --force can replace by a file)."""
    existing = [p for p in map(Path, paths) if _exists(p)]  # once: `paths` may be an iterator
    for p in existing:
        if what := "a folder" if p.is_dir() else special_kind(p):
            raise AudioAEError(f"{p}: {what}, where a file would be written; name a file")
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise AudioAEError(f"{existing[0]} exists{more}; --force overwrites")


def check_writable(folder: Path) -> None:
    """Fail when `folder` (or, where it does not exist yet, its nearest existing parent, in
    which it would be created) is not a writable folder."""
    folder = Path(os.path.abspath(folder))
    probe = folder
    while not _exists(probe) and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        where = "" if probe == folder else f" ({probe}, in which it would be created)"
        raise AudioAEError(f"{folder}: not a folder{where}")
    try:  # the folders to create: the system refuses a name too long only when creating it
        longest = os.pathconf(probe, "PC_NAME_MAX")
    except (OSError, ValueError):
        longest = 255
    for part in folder.relative_to(probe).parts:
        if len(os.fsencode(part)) > longest:
            raise AudioAEError(
                f"{folder}: File name too long (a name of {len(os.fsencode(part))} bytes; "
                f"this file system takes {longest})"
            )
    try:  # by trying: os.access misses read-only mounts, and root passes it everywhere
        tempfile.TemporaryFile(dir=probe).close()
    except OSError as e:
        raise AudioAEError(f"{folder}: cannot write in {probe} ({e.strerror or e})") from None


def _exists(path: Path) -> bool:
    """Path.exists, but a path the system cannot look up (a name too long) is an error naming
    it, not an OSError traceback."""
    try:
        return path.exists()
    except OSError as e:
        raise AudioAEError(f"{path}: {e.strerror or e}") from None


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same ending, so that writers choosing a format by
    it still do); on success it replaces `path`, on any failure it is removed. An OSError
    (a full disk, a folder in the way) names `path`, the file the user asked for."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name[-200:]}")  # fits where `path` fits
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        if e.filename not in (None, str(tmp), tmp):  # another file's error: as it is
            raise
        code = e.errno if e.errno is not None else errno.EIO
        raise OSError(code, e.strerror or os.strerror(code), str(path)) from None
    finally:
        with suppress(OSError):  # never written, or already renamed
            tmp.unlink()


def write_text(path: Path, text: str) -> None:
    """Path.write_text, atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)
