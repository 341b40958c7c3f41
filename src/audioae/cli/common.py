"""What every command shares: the error policy and the device and chunking options.

Errors the user can fix (AudioAEError: bad input, config or checkpoint; OSError: a missing or
unwritable file, a full disk) are one line `PROG: message` on stderr and exit status 2 (as
argparse's own usage errors); Ctrl-C exits with 130. Any other exception is unexpected (a bug,
or e.g. CUDA out of memory): one line too, with its type, so that it can be reported.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Callable
from typing import TypeVar

from audioae.errors import AudioAEError
from audioae.files import InputWarning

STATUS = 2  # every command's exit status for a one-line error
T = TypeVar("T")


def fail(prog: str, message: str) -> None:
    print(f"{prog}: {message}", file=sys.stderr)
    sys.exit(STATUS)


def one_line(error: BaseException) -> str:
    """The message of a user-facing error (AudioAEError or OSError) as one line; an OSError
    names its path (both for a rename), whatever the call that raised it."""
    if isinstance(error, OSError) and (error.filename is not None or error.strerror):
        paths = " -> ".join(str(p) for p in (error.filename, error.filename2) if p is not None)
        return f"{paths}: {error.strerror or error}".removeprefix(": ")
    return str(error).strip().replace("\n", " ")


def run_command(prog: str, body: Callable[[], T]) -> T:
    """body(), with the error policy of the module docstring; warnings about the user's input
    (InputWarning) are one line `PROG: warning: message` each, always shown."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.simplefilter("always", InputWarning)
    default_show = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, InputWarning):
            print(f"{prog}: warning: {one_line(message)}", file=sys.stderr)
        else:
            default_show(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        return body()
    except (AudioAEError, OSError) as e:
        fail(prog, one_line(e))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:
        fail(prog, f"unexpected error: {type(e).__name__}: {one_line(e)}")
    finally:
        warnings.showwarning = default_show


def positive(kind: type):
    """An argparse type: a finite number of `kind` above 0 (NaN and infinity are refused)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or not value > 0:
            raise argparse.ArgumentTypeError(f"{text}: must be more than 0 (a finite number)")
        return value

    parse.__name__ = kind.__name__
    return parse


DEVICES = "auto, cpu, cuda, cuda:N, mps"


def add_device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1")


def parse_device(name: str):
    """A torch.device from --device: auto is CUDA when available, else the CPU. Only devices
    that hold data and run the model are accepted (not e.g. `meta`)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AudioAEError(f"--device {name}: not a device ({DEVICES})") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise AudioAEError(f"--device {name}: not a device audioae runs on ({DEVICES})")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AudioAEError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise AudioAEError(f"--device {name}: this machine has {count} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise AudioAEError(f"--device {name}: MPS is not available on this machine")
    return device


def add_chunk_options(p: argparse.ArgumentParser) -> None:
    from audioae.inference.chunked import CHUNK_SIZE, OVERLAP

    p.add_argument(
        "--chunk-size",
        type=int,
        help=f"latent frames per chunk (default {CHUNK_SIZE}); 0: whole files at once",
    )
    p.add_argument(
        "--overlap",
        type=int,
        help=f"latent frames shared by neighbouring chunks (default {OVERLAP}, at most half the "
        "chunk size); a quarter of it should cover the network's receptive field",
    )


def parse_chunking(args: argparse.Namespace) -> tuple[int, int]:
    """(chunk_size, overlap) from --chunk-size and --overlap, by inference.chunked.chunking."""
    from audioae.inference.chunked import chunking

    return chunking(args.chunk_size, args.overlap)
