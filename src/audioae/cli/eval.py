"""`audioae-eval CKPT... DIR_or_FILES...`: reconstruction quality of models on audio files.

audioae-eval outputs/run data/test                       # every audio file under data/test
audioae-eval outputs/run a.wav b.flac --out eval_a --conditions identity,lowpass4k
audioae-eval outputs/run data/test --chunk-size 64 --device cuda
audioae-eval outputs/a outputs/b data/test --max-files 8 --seconds 10 --report report/

The leading arguments that are models (what audioae.inference.loading.locate accepts, or a
folder or file that looks like one: a run's checkpoints/, a config.yaml or model_config.json,
a weights file) are the models; the first other one and all after it are the inputs. Each model
writes its results to its own folder: --out (default ./eval_<name>) for one model, --out/<name>
(default ./eval_<name>) for several. --report DIR writes the listening report (audioae/report).

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
    positive,
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
    p.add_argument(
        "inputs",
        nargs="+",
        help="more models to compare, then audio files or folders (searched recursively)",
    )
    p.add_argument(
        "--out",
        help="output folder (default: ./eval_<checkpoint name>); with several models, one "
        "folder per model in it",
    )
    p.add_argument("--report", help="write the HTML listening report into this folder")
    p.add_argument("--max-files", type=positive(int), help="only the first N files (in name order)")
    p.add_argument("--seconds", type=positive(float), help="only the first S seconds of each file")
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
    p.add_argument(
        "--force", action="store_true", help="overwrite results.json, results.csv and the report"
    )
    return p.parse_args(argv)


def looks_like_model(name: str) -> bool:
    """Whether a positional argument names a model rather than audio."""
    from audioae.errors import AudioAEError
    from audioae.inference.loading import SAT_CONFIG, locate
    from audioae.runs import CONFIG, is_run

    try:
        locate(name)
        return True
    except AudioAEError:  # still a model when it looks like one: loading it says what is wrong
        path = Path(name).expanduser()
        if path.is_file():
            return path.suffix in (".safetensors", ".ckpt", ".pt", ".pth")
        return path.is_dir() and (
            is_run(path) or (path / CONFIG).exists() or (path / SAT_CONFIG).exists()
        )


def split_models(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(models, inputs) from the positional arguments (the module docstring's rule)."""
    from audioae.evaluate import EvalError

    models, rest = [args.checkpoint], list(args.inputs)
    while rest and looks_like_model(rest[0]):
        models.append(rest.pop(0))
    if not rest:
        raise EvalError(f"no audio inputs after the model(s) {' '.join(models)}")
    return models, rest


def default_out(checkpoint: str) -> Path:
    """./eval_<name>: the run's name, with the step for a checkpoint inside checkpoints/."""
    from audioae.runs import run_name

    return Path(f"eval_{run_name(checkpoint)}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_command("audioae-eval", lambda: run(args, argv))


def outputs(models: list[str], out: str | None) -> list[Path]:
    """Each model's results folder: --out or ./eval_<name> for one; --out/<name> or
    ./eval_<name> for several (names made distinct by audioae.report.labels)."""
    from audioae.report import labels

    if len(models) == 1:
        return [Path(out) if out else default_out(models[0])]
    return [Path(out) / name if out else Path(f"eval_{name}") for name in labels(models)]


def run(args: argparse.Namespace, argv: list[str] | None) -> list[dict]:
    from audioae.evaluate import check_outputs, find_files, parse_conditions
    from audioae.report import check_report, evaluate_runs

    # input and output errors before the heavy work (loading the model)
    models, inputs = split_models(args)
    outs = outputs(models, args.out)
    parse_conditions(args.conditions)
    find_files(inputs, args.max_files)
    for out in outs:
        check_outputs(out, args.force)
    report = Path(args.report) if args.report else None
    if report is not None:
        check_report(report, args.force)
    chunk, overlap = parse_chunking(args)
    return evaluate_runs(
        models,
        inputs,
        outs,
        report,
        conditions=args.conditions,
        chunk=chunk,
        overlap=overlap,
        device=parse_device(args.device),
        ema=not args.no_ema,
        visqol=not args.no_visqol,
        command="audioae-eval " + " ".join(sys.argv[1:] if argv is None else argv),
        force=args.force,
        max_files=args.max_files,
        seconds=args.seconds,
    )


if __name__ == "__main__":
    main()
