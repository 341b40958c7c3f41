"""`audioae-eval CKPT DIR_or_FILES...`: reconstruction quality of a model on audio files.

audioae-eval outputs/run data/test                       # every audio file under data/test
audioae-eval outputs/run a.wav b.flac --out eval_a --conditions identity,lowpass4k
audioae-eval outputs/run data/test --chunk-size 64 --device cuda

Every file is read (soundfile), resampled and channel-converted to the model's rate and channels
(audioae.inference.audio), reconstructed deterministically (VAE mean) in overlapping chunks by
audioae.inference's encode_long/decode_long (zero-padded to the downsampling ratio and trimmed
back), and compared with that converted input by audioae.metrics: SI-SDR, descript-audio-codec's
mel and multi-scale STFT distances and, when visqol-python is installed, ViSQOL. Reference
conditions on the same files give the numbers a scale: `identity` (the input itself: the best
possible) and `lowpassNk` (a zero-phase low-pass at N kHz: a band-limited but otherwise perfect
reconstruction).

Means are reported overall and for every sub-folder: names are relative to the deepest folder
that holds all inputs (a DIR argument itself), and a file counts towards each folder above it
(music/test/x.wav towards music/test and music). Means of SI-SDR are means of the dB values, as
dac's evaluation reports them. Outputs: a table on the terminal, results.json (everything, with
the definitions) and results.csv (one row per file or mean and condition) in --out.

Errors (a missing input, no audio found, an unreadable file, a bad checkpoint) are one line
`audioae-eval: ...` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import re
import sys
import time
from pathlib import Path

from audioae.errors import AudioAEError

EXTENSIONS = frozenset({"wav", "flac", "ogg", "mp3"})  # as data/audio_dir.AudioDir
METRICS = {
    "si_sdr": "SI-SDR in dB (torchmetrics, no mean removal), mean over channels; higher is better",
    "mel": "descript-audio-codec mel distance: n_mels (150, 80), windows (2048, 512), hop "
    "window/4, L1 of log10(clamp(mel, 1e-5)^2) + L1 of mel, summed over scales; lower is better",
    "stft": "descript-audio-codec multi-scale STFT distance: windows (2048, 512), hop window/4, "
    "L1 of log10(clamp(|X|, 1e-5)^2) + L1 of |X|, summed over scales; lower is better",
    "visqol": "ViSQOL v3 MOS-LQO, audio mode (48 kHz mono), visqol-python; higher is better; "
    "null for clips under 0.96 s, too short to score",
}
HEADERS = {"si_sdr": "SI-SDR dB", "mel": "mel dist", "stft": "STFT dist", "visqol": "ViSQOL"}
# SI-SDR is never shown alone: a silent output scores 0 dB, better than many real
# reconstructions, while its mel and STFT distances are large. Every row shows all three.
PAIRING_NOTE = (
    "SI-SDR is always read with the mel and STFT distances: a silent output scores 0 dB SI-SDR "
    "(better than many real reconstructions) but large spectral distances."
)


class EvalError(AudioAEError):
    """A problem with the command's inputs; reported as one line."""


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
    p.add_argument(
        "--chunk-size",
        type=int,
        help="latent frames per chunk (default: audioae.inference.CHUNK_SIZE, 128); 0: whole "
        "files at once",
    )
    p.add_argument(
        "--overlap",
        type=int,
        help="latent frames shared by neighbouring chunks (default: audioae.inference.OVERLAP, "
        "32, at most half the chunk size)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1")
    p.add_argument("--no-ema", action="store_true", help="online weights instead of the EMA's")
    p.add_argument("--no-visqol", action="store_true", help="skip ViSQOL even when installed")
    args = p.parse_args(argv)
    if args.chunk_size is not None and args.chunk_size < 0:
        p.error("--chunk-size must be >= 0")
    return args


def parse_conditions(text: str) -> dict[str, float | None]:
    """{"identity": None, "lowpass4k": 4000.0, ...} from "identity,lowpass4k"."""
    conditions: dict[str, float | None] = {}
    for name in filter(None, (c.strip() for c in text.split(","))):
        if name == "identity":
            conditions[name] = None
        elif m := re.fullmatch(r"lowpass(\d+(?:\.\d+)?)k", name):
            conditions[name] = float(m.group(1)) * 1000
        else:
            raise EvalError(
                f"unknown condition {name!r}: use identity or lowpassNk (e.g. lowpass4k)"
            )
    return conditions


def find_files(inputs: list[str]) -> tuple[Path, list[Path]]:
    """(root, files): every audio file named or found under a named folder, and the deepest
    folder holding them all, against which names and sub-folders are reported."""
    from audioae.data.audio_dir import _scan

    files: list[Path] = []
    bases: list[str] = []
    for name in inputs:
        path = Path(os.path.abspath(os.path.expanduser(name)))  # symlinks kept: names stay
        if path.is_dir():
            found = [Path(f) for f in _scan(str(path), EXTENSIONS)]
            if not found:
                raise EvalError(
                    f"{name}: no audio files ({', '.join(sorted(EXTENSIONS))}) in it or below"
                )
            files += found
            bases.append(str(path))
        elif path.is_file():
            files.append(path)
            bases.append(str(path.parent))
        else:
            raise EvalError(f"{name}: no such file or directory")
    return Path(os.path.commonpath(bases)), list(dict.fromkeys(files))


def default_out(checkpoint: str) -> Path:
    """./eval_<name>: the run's name, with the step for a checkpoint inside checkpoints/."""
    from audioae.runs import run_name

    return Path(f"eval_{run_name(checkpoint)}")


def groups(relative: Path) -> list[str]:
    """The folders a file counts towards: "a/b/x.wav" -> ["a", "a/b"]."""
    parts = relative.parent.parts
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def mean(values: list[float | None]) -> float:
    """The mean of the computed values (None: not computed); NaN when there are none."""
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else math.nan


def fmt(value: float | None, width: int) -> str:
    if value is None:
        return f"{'-':>{width}}"
    return f"{value:{width}.2f}" if math.isfinite(value) else f"{'nan':>{width}}"


def main(argv: list[str] | None = None) -> None:
    try:
        run(argv)
    except AudioAEError as e:
        print(f"audioae-eval: {e}", file=sys.stderr)
        sys.exit(2)


def run(argv: list[str] | None) -> None:
    args = parse_args(argv)
    conditions = parse_conditions(args.conditions)
    root, files = find_files(args.inputs)
    out = Path(args.out) if args.out else default_out(args.checkpoint)

    import torch  # heavy imports after the arguments are known to be usable

    from audioae import metrics
    from audioae.inference import (
        CHUNK_SIZE,
        OVERLAP,
        decode_long,
        encode_long,
        load_model,
        optimize_for_inference,
    )
    from audioae.inference.audio import read_audio, to_model

    whole = args.chunk_size == 0
    chunk = sys.maxsize // 2 if whole else args.chunk_size or CHUNK_SIZE
    overlap = min(OVERLAP, chunk // 2) if args.overlap is None else args.overlap
    if args.device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        try:
            device = str(torch.device(args.device))
        except RuntimeError:
            raise EvalError(f"--device {args.device}: not a device (cpu, cuda, cuda:1)") from None
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise EvalError(f"--device {device}: CUDA is not available on this machine")
    model, _ = load_model(args.checkpoint, ema=not args.no_ema, device=device)
    optimize_for_inference(model)  # same outputs, less work (audioae/inference/fast.py)
    rate, ratio = model.sample_rate, model.downsampling_ratio
    names = ["si_sdr", "mel", "stft"]
    visqol_note = None
    if args.no_visqol:
        visqol_note = "ViSQOL: skipped (--no-visqol)"
    elif metrics.visqol_available():
        names.append("visqol")
    else:
        visqol_note = "ViSQOL: not computed (optional: pip install visqol-python)"

    def measure(est: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
        short = metrics.min_length() - ref.shape[-1]
        if short > 0:  # the 2048-sample STFT needs 1025 samples; pad both alike
            est, ref = (torch.nn.functional.pad(x, (0, short)) for x in (est, ref))
        values = {
            "si_sdr": metrics.si_sdr(est, ref),
            "mel": metrics.mel_distance(est, ref, rate),
            "stft": metrics.stft_distance(est, ref),
        }
        if "visqol" in names:  # None (not computed) for clips too short to score
            if ref.shape[-1] >= metrics.visqol_min_length(rate):
                values["visqol"] = metrics.visqol(est, ref, rate)
            else:
                values["visqol"] = None
        return {k: None if v is None else float(v) for k, v in values.items()}

    print(
        f"model: {args.checkpoint} ({rate} Hz, {model.in_channels} -> {model.out_channels} "
        f"channels, ratio {ratio}, {device}); {len(files)} file(s) under {root}"
    )
    table = Table(names)
    print(table.header("file (model reconstruction)"))
    results = []
    start = time.perf_counter()
    for path in files:
        audio, file_rate = read_audio(path)
        # input and reference by the training rule (AudioAutoencoder.inputs_and_targets)
        x, ref = model.inputs_and_targets(
            to_model(audio, file_rate, rate, model.data_channels, str(path))
        )
        enc = encode_long(model, x[None].to(device), chunk, overlap)
        est = decode_long(model, enc.latents, enc.length, chunk, overlap)[0]
        rel = path.relative_to(root)
        entry = {
            "file": rel.as_posix(),
            "folder": rel.parent.as_posix(),
            "seconds": ref.shape[-1] / rate,
            "file_sample_rate": file_rate,
            "file_channels": audio.shape[0],
            "model": measure(est.float(), ref),
        }
        for cond, hz in conditions.items():
            degraded = ref if hz is None else metrics.lowpass(ref, rate, hz)
            entry[cond] = measure(degraded, ref)
        results.append(entry)
        print(table.row(entry["file"], entry["model"]), flush=True)
    elapsed = time.perf_counter() - start

    conds = ["model", *conditions]
    means = summarise(results, conds, names)
    print()
    print(table.header("means", conditions=True))
    for label, agg in [("overall", means["overall"]), *means["folders"].items()]:
        for i, cond in enumerate(conds):
            print(table.row(f"{label} ({agg['files']})" if i == 0 else "", agg[cond], cond))
    print()
    if "visqol" in names and (short := sum(r["model"]["visqol"] is None for r in results)):
        visqol_note = (
            f"ViSQOL: none for {short} file(s) under {metrics.visqol_min_length(rate) / rate:.2f}"
            " s, the shortest it scores; its means are over the other files"
        )
    notes = [PAIRING_NOTE, *filter(None, [visqol_note])]
    if nyquist := [c for c, hz in conditions.items() if hz is not None and hz >= rate / 2]:
        notes.append(
            f"{', '.join(nyquist)}: cutoff at or above the model's Nyquist ({rate / 2:g} Hz), "
            "so the same as identity"
        )
    print("\n".join(notes))

    report = {
        "command": "audioae-eval " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "checkpoint": str(args.checkpoint),
        "model": {
            "sample_rate": rate,
            "in_channels": model.in_channels,
            "out_channels": model.out_channels,
            "downsampling_ratio": ratio,
            "ema": not args.no_ema,
        },
        "root": str(root),
        "device": device,
        "chunk_size": 0 if whole else chunk,
        "overlap": overlap,
        "seconds_elapsed": round(elapsed, 3),
        "metrics": {k: METRICS[k] for k in names},
        "conditions": {"model": "the model's reconstruction (deterministic: VAE mean)"}
        | {c: describe(hz) for c, hz in conditions.items()},
        "notes": notes,
        "files": results,
        "means": means,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(finite(report), indent=2) + "\n")
    write_csv(out / "results.csv", results, means, conds, names)
    print(f"results: {out / 'results.json'}, {out / 'results.csv'} ({elapsed:.1f} s)")


def describe(cutoff_hz: float | None) -> str:
    if cutoff_hz is None:
        return "the input itself"
    return f"zero-phase windowed-sinc low-pass at {cutoff_hz:g} Hz (audioae.metrics.lowpass)"


def summarise(results: list[dict], conds: list[str], names: list[str]) -> dict:
    """{"overall": means, "folders": {folder: means}}; a file counts towards every folder
    above it."""
    folders = sorted({g for r in results for g in groups(Path(r["file"]))})
    return {
        "overall": aggregate(results, conds, names),
        "folders": {
            f: aggregate([r for r in results if f in groups(Path(r["file"]))], conds, names)
            for f in folders
        },
    }


def aggregate(entries: list[dict], conds: list[str], names: list[str]) -> dict:
    agg: dict = {"files": len(entries), "seconds": sum(e["seconds"] for e in entries)}
    for cond in conds:
        agg[cond] = {k: mean([e[cond][k] for e in entries]) for k in names}
    return agg


def finite(obj):
    """NaN and infinities as null: JSON has no spelling for them."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite(v) for v in obj]
    return obj


def write_csv(path: Path, results: list, means: dict, conds: list, names: list) -> None:
    """One row per (file or mean, condition); scope: file, folder or overall."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scope", "name", "condition", "files", "seconds", *names])
        for r in results:
            for cond in conds:
                w.writerow(
                    [
                        "file",
                        r["file"],
                        cond,
                        1,
                        f"{r['seconds']:.6f}",
                        *("" if r[cond][k] is None else repr(r[cond][k]) for k in names),
                    ]
                )
        scopes = [("overall", "", means["overall"])]
        scopes += [("folder", name, agg) for name, agg in means["folders"].items()]
        for scope, name, agg in scopes:
            for cond in conds:
                w.writerow(
                    [
                        scope,
                        name,
                        cond,
                        agg["files"],
                        f"{agg['seconds']:.6f}",
                        *(repr(agg[cond][k]) for k in names),
                    ]
                )


class Table:
    """Fixed-width terminal table; every row has all metrics side by side."""

    def __init__(self, names: list[str], label_width: int = 36):
        self.names, self.width = names, label_width

    def header(self, title: str, conditions: bool = False) -> str:
        cond = f"  {'condition':<10}" if conditions else ""
        cells = "".join(f"  {HEADERS[k]:>10}" for k in self.names)
        line = f"{title:<{self.width}}{cond}{cells}"
        return f"{line}\n{'-' * len(line)}"

    def row(self, label: str, values: dict[str, float], condition: str | None = None) -> str:
        if len(label) > self.width:
            label = "..." + label[-(self.width - 3) :]
        cond = f"  {condition:<10}" if condition is not None else ""
        cells = "".join(f"  {fmt(values[k], 10)}" for k in self.names)
        return f"{label:<{self.width}}{cond}{cells}"


if __name__ == "__main__":
    main()
