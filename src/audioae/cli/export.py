"""`audioae-export RUN --out DIR [--sat] [--format audioae|diffusers|onnx]`: a trained model as a
self-contained folder (audioae/inference/export.py says what the folder holds), a diffusers
AutoencoderOobleck folder or ONNX graphs.

    audioae-export outputs/2025-01-01/12-00-00 --out exports/my_vae --sat
    audioae-encode exports/my_vae song.flac --out latents/
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from audioae.cli.common import run_command


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="audioae-export", description=__doc__.splitlines()[0])
    p.add_argument("run", metavar="RUN", help="run dir, checkpoint, export or SAT model")
    p.add_argument("--out", "-o", required=True, type=Path, help="output folder (created)")
    p.add_argument("--sat", action="store_true", help="also write model_config.json (SAT)")
    p.add_argument(
        "--format",
        choices=("audioae", "diffusers", "onnx"),
        default="audioae",
        help="audioae (default), diffusers (AutoencoderOobleck) or onnx (encoder/decoder.onnx)",
    )
    p.add_argument("--no-ema", action="store_true", help="export the online weights")
    p.add_argument("--force", action="store_true", help="overwrite an existing export")
    p.add_argument(
        "--latent-stats",
        type=Path,
        metavar="STATS",
        help="audioae-pre-encode's stats.json of these weights, stored as latent_stats.json",
    )
    args = p.parse_args(argv)

    def body():
        from audioae.inference.export import export

        export(
            args.run, args.out, sat=args.sat, ema=not args.no_ema, force=args.force,
            format=args.format, latent_stats=args.latent_stats,
        )  # fmt: skip

    run_command(p.prog, body)
