"""`audioae-eval CKPT DIR_or_FILES...`: reconstruction quality of a model on audio files.

audioae-eval outputs/run data/test                       # every audio file under data/test
audioae-eval outputs/run a.wav b.flac --out eval_a --conditions identity,lowpass4k
audioae-eval outputs/run data/test --chunk-size 64 --device cuda

What is measured (SI-SDR, mel and STFT distances, ViSQOL; reference conditions identity and
lowpassNk), how the means are formed and what results.json and results.csv hold: see
audioae/evaluate.py. Outputs go to --out (default ./eval_<checkpoint name>).

Errors (a missing input, no audio found, an unreadable file, a bad checkpoint) are one line
`audioae-eval: ...` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audioae.cli.common import (
    add_chunk_options,
    add_device_option,
    parse_chunking,
    parse_device,
    run_command,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="audioae-eval",
        description="Reconstruct audio files with a model and report SI-SDR, mel and STFT "
        "distances (and ViSQOL when visqol-python is installed), per file, per folder and "
        "overall, next to reference conditions.",
    )
    p.add_argument("checkpoint", help="run dir, checkpoint, export or stable-audio-tools model")
    p.add_argument("inputs", nargs="+", help="audio files or folders (searched recursively)")
    p.add_argument("--out", help="output folder (default: ./eval_<checkpoint name>)")
    p.add_argument(
        "--conditions",
        default="identity,lowpass4k,lowpass8k",
        help="reference conditions, comma-separated: identity, lowpassNk (default: %(default)s;"
        " '' for none)",
    )
    add_chunk_options(p)
    add_device_option(p)
    p.add_argument("--no-ema", action="store_true", help="online weights instead of the EMA's")
    p.add_argument("--no-visqol", action="store_true", help="skip ViSQOL even when installed")
    p.add_argument("--force", action="store_true", help="overwrite results.json and results.csv")
    return p.parse_args(argv)


def default_out(checkpoint: str) -> Path:
    """./eval_<name>: the run's name, with the step for a checkpoint inside checkpoints/."""
    from audioae.runs import run_name

    return Path(f"eval_{run_name(checkpoint)}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_command("audioae-eval", lambda: run(args, argv))


def run(args: argparse.Namespace, argv: list[str] | None) -> dict:
    from audioae.evaluate import check_outputs, evaluate, find_files, parse_conditions

    # input and output errors before the heavy work (loading the model)
    out = Path(args.out) if args.out else default_out(args.checkpoint)
    parse_conditions(args.conditions)
    find_files(args.inputs)
    check_outputs(out, args.force)
    chunk, overlap = parse_chunking(args)
    return evaluate(
        args.checkpoint,
        args.inputs,
        out,
        conditions=args.conditions,
        chunk=chunk,
        overlap=overlap,
        device=parse_device(args.device),
        ema=not args.no_ema,
        visqol=not args.no_visqol,
        command="audioae-eval " + " ".join(sys.argv[1:] if argv is None else argv),
        force=args.force,
    )


if __name__ == "__main__":
    main()
