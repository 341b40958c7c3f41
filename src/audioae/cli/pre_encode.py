"""`audioae-pre-encode CKPT DATA --out DIR`: encode a whole folder of audio into latents for a
latent model, in stable-audio-tools' pre-encoded layout (audioae/inference/pre_encode.py).

    audioae-pre-encode exports/my_vae data/songs --out latents/songs
    audioae-pre-encode exports/my_vae data/songs --out latents/crops --seconds 30 --batch-size 16
    accelerate launch --num_processes 4 -m audioae.cli.pre_encode exports/my_vae data/songs \\
        --out latents/songs

A restart with the same arguments skips what is complete. Errors are one line on stderr and
exit status 2; unreadable audio files are warnings, listed in DIR/details.json.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from audioae.cli.common import (
    add_chunk_options,
    add_device_option,
    parse_device,
    positive,
    run_command,
)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="audioae-pre-encode",
        description=__doc__.splitlines()[0].split(": ", 1)[1],
        epilog="Writes DIR/<process>/<id>.npy + .json per item, DIR/stats.json (latent mean, "
        "std and the scale for unit variance) and DIR/details.json.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="run dir, checkpoint, export or SAT model")
    p.add_argument("data", metavar="DATA", type=Path, help="folder of audio files (recursive)")
    p.add_argument("--out", "-o", required=True, type=Path, help="output folder (created)")
    p.add_argument(
        "--seconds",
        type=positive(float),
        help="cut each file into consecutive crops of this length, the last zero-padded "
        "(padding_mask 0 there); default: whole files",
    )
    p.add_argument(
        "--batch-size", type=int, default=8, help="items per forward pass (equal lengths only)"
    )
    p.add_argument(
        "--sample",
        action="store_true",
        help="VAE: draw latents (stable-audio-tools' pre_encode.py samples); default: the mean",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="--sample: the draws' seed (mixed with each forward pass's first item)",
    )
    p.add_argument("--codes", action="store_true", help="discrete models: write the codes")
    add_chunk_options(p)
    add_device_option(p)
    p.add_argument("--workers", type=int, default=0, help="processes reading audio (default 0)")
    p.add_argument("--no-ema", action="store_true", help="use online weights, not the EMA")
    p.add_argument(
        "--force",
        action="store_true",
        help="write into DIR although it holds latents of another model or settings "
        "(re-encodes everything, replacing only the files audioae-pre-encode wrote)",
    )
    args = p.parse_args(argv)

    def body():
        from audioae.inference.pre_encode import Options, pre_encode

        parse_device(args.device)  # a bad --device is one line before any work
        opt = Options(
            seconds=args.seconds, batch_size=args.batch_size, sample=args.sample, seed=args.seed,
            codes=args.codes, chunk_size=args.chunk_size, overlap=args.overlap,
            ema=not args.no_ema, device=args.device, workers=args.workers, force=args.force,
        )  # fmt: skip
        pre_encode(args.checkpoint, args.data, args.out, opt)

    run_command(p.prog, body)


if __name__ == "__main__":
    main()
