"""Reconstruction quality of a model on audio files (`audioae-eval`, cli/eval.py).

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
dac's evaluation reports them. Every mean also has the input dependence (`Dependence`): how
much the outputs of different files differ, against their inputs, which exposes a model whose
output ignores its input. Files the metrics cannot score (unreadable, shorter than the STFT
needs, silent) are left out of the means and listed under `skipped` (`unmeasurable`). Outputs:
a table on the terminal, results.json (everything, with the definitions) and results.csv (one
row per file or mean and condition) in --out.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from audioae import metrics
from audioae.data import EXTENSIONS, find_audio
from audioae.errors import AudioAEError
from audioae.files import InputWarning, atomic_write, check_new, check_writable, write_text
from audioae.inference import decode_long, encode_long, load_model, optimize_for_inference
from audioae.inference.audio import read_audio, to_model
from audioae.inference.chunked import CHUNK_SIZE, OVERLAP, WHOLE

METRICS = {
    "si_sdr": "SI-SDR in dB (torchmetrics, no mean removal), mean over channels; higher is better",
    "mel": "descript-audio-codec mel distance: n_mels (150, 80), windows (2048, 512), hop "
    "window/4, L1 of log10(clamp(mel, 1e-5)^2) + L1 of mel, summed over scales; lower is better",
    "stft": "descript-audio-codec multi-scale STFT distance: windows (2048, 512), hop window/4, "
    "L1 of log10(clamp(|X|, 1e-5)^2) + L1 of |X|, summed over scales; lower is better",
    "visqol": "ViSQOL v3 MOS-LQO, audio mode (48 kHz mono), visqol-python; higher is better; "
    "null for clips under 0.96 s, too short to score",
}
DEPENDENCE = (
    "input dependence: the mel distance between the outputs of consecutive files (name order, "
    "first 5 s of each pair) over that between their inputs, per folder and overall; 0: the "
    "same output whatever the input (a collapsed model), identity: 1"
)
HEADERS = {"si_sdr": "SI-SDR dB", "mel": "mel dist", "stft": "STFT dist", "visqol": "ViSQOL"}
# SI-SDR is never shown alone: a silent output scores 0 dB, better than many real
# reconstructions, while its mel and STFT distances are large. Every row shows all three.
PAIRING_NOTE = (
    "SI-SDR is always read with the mel and STFT distances: a silent output scores 0 dB SI-SDR "
    "(better than many real reconstructions) but large spectral distances."
)


class Dependence:
    """Input dependence (DEPENDENCE) accumulated file by file, in O(1) memory per folder: each
    file is paired with the previous file of every folder it counts towards (and overall).

    A model whose output ignores its input can still score well on the spectral distances (an
    average spectrum is closer to most music than a poor reconstruction), and SI-SDR is low for
    phase-free reconstructions too; this tells the two apart."""

    SECONDS = 5.0

    def __init__(self, rate: int):
        self.rate, self.length = rate, round(self.SECONDS * rate)
        self.last: dict[str, dict[str, torch.Tensor]] = {}
        self.sums: dict[str, dict[str, float]] = {}  # scope -> {signal name: sum over pairs}

    def add(self, scopes: list[str], signals: dict[str, torch.Tensor]) -> None:
        """`signals`: "reference" and each condition's (C, T) signal of one file."""
        if signals["reference"].shape[-1] < metrics.min_length():
            return  # too short for the 2048-sample STFT
        signals = {k: v[..., : self.length] for k, v in signals.items()}
        for scope in scopes:
            previous = self.last.get(scope)
            self.last[scope] = signals
            if previous is None:
                continue
            n = min(signals["reference"].shape[-1], previous["reference"].shape[-1])
            sums = self.sums.setdefault(scope, {})
            for name, x in signals.items():
                d = float(metrics.mel_distance(x[..., :n], previous[name][..., :n], self.rate))
                sums[name] = sums.get(name, 0.0) + d

    def ratios(self, scope: str) -> dict[str, float | None]:
        """{condition: dependence}; None with fewer than two files long enough."""
        sums = self.sums.get(scope)
        if not sums or sums["reference"] == 0:
            return {}
        return {k: v / sums["reference"] for k, v in sums.items() if k != "reference"}


class EvalError(AudioAEError):
    """A problem with the command's inputs; reported as one line."""


def parse_conditions(text: str) -> dict[str, float | None]:
    """{"identity": None, "lowpass4k": 4000.0, ...} from "identity,lowpass4k"."""
    conditions: dict[str, float | None] = {}
    for name in filter(None, (c.strip() for c in text.split(","))):
        if name == "identity":
            conditions[name] = None
        elif m := re.fullmatch(r"lowpass(\d+(?:\.\d+)?)k", name):
            conditions[name] = float(m.group(1)) * 1000
            if conditions[name] <= 0:
                raise EvalError(
                    f"condition {name}: a low-pass at 0 Hz leaves nothing; use lowpassNk with "
                    "N above 0 (e.g. lowpass4k)"
                )
        else:
            raise EvalError(
                f"unknown condition {name!r}: use identity or lowpassNk (e.g. lowpass4k)"
            )
    return conditions


def find_files(inputs: list[str], max_files: int | None = None) -> tuple[Path, list[Path]]:
    """(root, files): every audio file named or found under a named folder (the first
    `max_files` of them), and the deepest folder holding them all, against which names and
    sub-folders are reported."""
    if max_files is not None and max_files < 1:
        raise EvalError(f"--max-files {max_files}: must be 1 or more")
    files: list[Path] = []
    bases: list[str] = []
    for name in inputs:
        path = Path(os.path.abspath(os.path.expanduser(name)))  # symlinks kept: names stay
        if path.is_dir():
            found = [Path(f) for f in find_audio(str(path))]
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
    return Path(os.path.commonpath(bases)), list(dict.fromkeys(files))[:max_files]


def evaluate(
    checkpoint: str,
    inputs: list[str],
    out: Path,
    conditions: str = "identity,lowpass4k,lowpass8k",
    chunk: int = CHUNK_SIZE,
    overlap: int = OVERLAP,
    device: str = "cpu",
    ema: bool = True,
    visqol: bool = True,
    command: str = "",
    force: bool = False,
    max_files: int | None = None,
    seconds: float | None = None,
    keep_audio: Callable[[str, dict[str, torch.Tensor], int], None] | None = None,
) -> dict:
    """Reconstruct every audio file of `inputs` (files, or folders searched recursively; the
    first `max_files` of them in name order, the first `seconds` of each) with the model at
    `checkpoint` in chunks of `chunk` latent frames (inference.chunked), measure it and the
    reference `conditions` (see the module docstring), print the table, write out/results.json
    and out/results.csv (existing ones only with `force`); returns the report (results.json's
    content). `keep_audio(file, audio, rate)`, when given, receives each file's "reference",
    "model" and condition signals, (C, T) at the model's rate (audioae.report writes them)."""
    conds_hz = parse_conditions(conditions)
    root, files = find_files(inputs, max_files)
    check_outputs(out, force)
    model, _ = load_model(checkpoint, ema=ema, device=device)
    optimize_for_inference(model)  # same outputs, less work (audioae/inference/fast.py)
    rate, ratio = model.sample_rate, model.downsampling_ratio
    names = ["si_sdr", "mel", "stft"]
    visqol_note = None
    if not visqol:
        visqol_note = "ViSQOL: skipped (--no-visqol)"
    elif metrics.visqol_available():
        names.append("visqol")
    else:
        visqol_note = "ViSQOL: not computed (optional: pip install visqol-python)"

    def measure(est: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
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
        f"model: {checkpoint} ({rate} Hz, {model.in_channels} -> {model.out_channels} "
        f"channels, ratio {ratio}, {device}); {len(files)} file(s) under {root}"
    )
    table = Table(names)
    print(table.header("file (model reconstruction)"))
    results, skipped = [], []
    dependence = Dependence(rate)
    named = {Path(os.path.abspath(os.path.expanduser(n))) for n in inputs}
    start = time.perf_counter()

    def skip(path: Path, kind: str, reason: str) -> None:
        warnings.warn(f"{path}: {reason}; skipped", InputWarning, stacklevel=1)
        entry = {"file": path.relative_to(root).as_posix(), "kind": kind, "reason": reason}
        skipped.append(entry)

    for path in files:
        try:
            audio, file_rate = read_audio(path)
        except AudioAEError as e:
            if path in named:  # a file the user named is an error; one found in a folder not
                raise
            skip(path, "unreadable", str(e).removeprefix(f"{path}: "))
            continue
        if seconds is not None:
            audio = audio[:, : max(1, round(seconds * file_rate))]
        # input and reference by the training rule (AudioAutoencoder.inputs_and_targets)
        x, ref = model.inputs_and_targets(
            to_model(audio, file_rate, rate, model.data_channels, str(path))
        )
        if degenerate := unmeasurable(ref, rate):  # its scores would be padding or 0 / 0
            skip(path, *degenerate)
            continue
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
        signals = {"reference": ref, "model": est.float()}
        for cond, hz in conds_hz.items():
            signals[cond] = ref if hz is None else metrics.lowpass(ref, rate, hz)
            entry[cond] = measure(signals[cond], ref)
        dependence.add(["", *groups(rel)], signals)
        if keep_audio is not None:
            keep_audio(entry["file"], signals, rate)
        results.append(entry)
        print(table.row(entry["file"], entry["model"]), flush=True)
    elapsed = time.perf_counter() - start
    if not results:
        raise EvalError(
            f"no file to measure: all {len(skipped)} skipped ({count_kinds(skipped)}; see the "
            "warnings)"
        )

    conds = ["model", *conds_hz]
    means = summarise(results, conds, names)
    print()
    print(table.header("means", conditions=True))
    for label, agg in [("overall", means["overall"]), *means["folders"].items()]:
        for i, cond in enumerate(conds):
            print(table.row(f"{label} ({agg['files']})" if i == 0 else "", agg[cond], cond))
    print()
    print(DEPENDENCE + ":")
    for scope, agg in [("", means["overall"]), *means["folders"].items()]:
        ratios = dependence.ratios(scope)
        for cond in conds:
            agg[cond]["dependence"] = ratios.get(cond)
        if ratios:
            cells = ", ".join(f"{c} {ratios[c]:.3f}" for c in conds)
            print(f"  {scope or 'overall'}: {cells}")
    print()
    if "visqol" in names and (short := sum(r["model"]["visqol"] is None for r in results)):
        visqol_note = (
            f"ViSQOL: none for {short} file(s) under {metrics.visqol_min_length(rate) / rate:.2f}"
            " s, the shortest it scores; its means are over the other files"
        )
    notes = [PAIRING_NOTE, *filter(None, [visqol_note])]
    if skipped:
        notes.append(
            f"skipped {len(skipped)} file(s) of {len(files)}, not in the means: "
            f"{count_kinds(skipped)} (listed under 'skipped')"
        )
        print("skipped:")
        for entry in skipped:
            print(f"  {entry['file']}: {entry['reason']}")
    if nyquist := [c for c, hz in conds_hz.items() if hz is not None and hz >= rate / 2]:
        notes.append(
            f"{', '.join(nyquist)}: cutoff at or above the model's Nyquist ({rate / 2:g} Hz), "
            "so the same as identity"
        )
    print("\n".join(notes))

    report = {
        "command": command,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "checkpoint": str(checkpoint),
        "model": {
            "sample_rate": rate,
            "in_channels": model.in_channels,
            "out_channels": model.out_channels,
            "downsampling_ratio": ratio,
            "ema": ema,
        },
        "root": str(root),
        "device": str(device),
        "chunk_size": 0 if chunk == WHOLE else chunk,
        "overlap": overlap,
        "seconds_elapsed": round(elapsed, 3),
        # only when limited, so that an unlimited run's results.json stays as it was
        **({"max_files": max_files} if max_files is not None else {}),
        **({"seconds_per_file": seconds} if seconds is not None else {}),
        "metrics": {k: METRICS[k] for k in names},  # per file; the means add "dependence":
        "dependence": DEPENDENCE,
        "conditions": {"model": "the model's reconstruction (deterministic: VAE mean)"}
        | {c: describe(hz) for c, hz in conds_hz.items()},
        "notes": notes,
        "files": results,
        "skipped": skipped,
        "means": means,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.json", json.dumps(finite(report), indent=2) + "\n")
    write_csv(out / "results.csv", results, means, conds, names)
    print(f"results: {out / 'results.json'}, {out / 'results.csv'} ({elapsed:.1f} s)")
    return report


SKIPPED = {
    "unreadable": "unreadable",
    "short": "too short for the metrics",
    "silent": "silent reference",
}
# Below half a step of 16-bit audio: a reference no file format would hold as sound, against
# which SI-SDR is 0 / 0 (about -160 dB) and the distances measure only the reconstruction.
SILENT_PEAK = 2.0**-16


def unmeasurable(ref: torch.Tensor, rate: int) -> tuple[str, str] | None:
    """(kind, reason) when the metrics cannot score a reference (C, T) at `rate`: too short for
    the 2048-sample STFT (its scores would be those of zero padding: a 1-sample file scores
    SI-SDR +110 dB) or silent; else None."""
    if ref.shape[-1] < metrics.min_length():
        return "short", (
            f"{SKIPPED['short']}: {ref.shape[-1]} sample(s) at {rate} Hz, the spectral "
            f"distances need {metrics.min_length()} ({metrics.min_length() / rate * 1000:.0f} ms)"
        )
    if float(ref.abs().max()) < SILENT_PEAK:
        return "silent", (
            f"{SKIPPED['silent']}: peak {float(ref.abs().max()):.3g}, below {SILENT_PEAK:.3g} "
            "(SI-SDR and relative distances are undefined against silence)"
        )
    return None


def count_kinds(skipped: list[dict]) -> str:
    """e.g. "1 unreadable, 2 too short for the metrics"."""
    counts = {kind: sum(e["kind"] == kind for e in skipped) for kind in SKIPPED}
    return ", ".join(f"{n} {SKIPPED[kind]}" for kind, n in counts.items() if n)


def check_outputs(out: Path, force: bool) -> None:
    """Before any computing: --out writable, results.json/csv new unless `force`."""
    check_writable(out)
    check_new([out / "results.json", out / "results.csv"], force)


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
    with atomic_write(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scope", "name", "condition", "files", "seconds", *names, "dependence"])
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
                        "",  # a mean over pairs of files: no per-file value
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
                        ""
                        if agg[cond].get("dependence") is None
                        else repr(agg[cond]["dependence"]),
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
