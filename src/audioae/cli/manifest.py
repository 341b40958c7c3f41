"""`audioae-manifest DIR --out manifest.jsonl`: scan an audio folder once, in parallel, into a
manifest (one JSON line per file: path, frames, sample_rate, channels, duration; a line with
`error` for each file that cannot be used) that `data=audio_dir data.manifest=FILE` starts from
without opening any file (audioae/data/manifest.py).

    audioae-manifest /data/music --out music.jsonl --workers 16
    audioae-train data=audio_dir data.path=/data/music data.manifest=music.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from audioae.cli.common import run_command

PROG = "audioae-manifest"


def main(argv: Sequence[str] | None = None) -> None:
    from audioae.data.audio_dir import EXTENSIONS

    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("dir", metavar="DIR", help="audio folder (searched recursively)")
    p.add_argument("--out", "-o", required=True, type=Path, help="the manifest (.jsonl)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel processes (default: one per CPU, from 4 CPUs)",
    )
    p.add_argument(
        "--extensions",
        nargs="+",
        default=list(EXTENSIONS),
        help=f"file extensions (default: {' '.join(EXTENSIONS)})",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing manifest")
    args = p.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        p.error(f"--workers {args.workers}: must be >= 1")

    def body():
        from audioae.data.manifest import make_manifest

        start = time.perf_counter()
        entries = make_manifest(args.dir, args.out, args.extensions, args.workers, args.force)
        failed = [e for e in entries if e.error is not None]
        for e in failed:
            print(f"{PROG}: warning: {Path(args.dir) / e.path}: {e.error}", file=sys.stderr)
        hours = sum(e.duration for e in entries) / 3600
        print(
            f"{args.out}: {len(entries) - len(failed)} file(s), {hours:.2f} h of audio, "
            f"{len(failed)} unusable (listed with 'error'); {time.perf_counter() - start:.1f} s"
        )

    run_command(PROG, body)
