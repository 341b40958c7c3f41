"""The listening report of `audioae-eval RUN... DATA --report DIR`: one static HTML page a person
opens from the file system (no server, nothing fetched from the network) to judge models by ear
and eye.

Every run is evaluated by audioae.evaluate on the same files; its results.json and results.csv go
to its own --out folder as without --report. The report folder holds
- index.html with report.js and report.css beside it (page.py);
- audio/KEY/: reference.flac and one file per low-pass reference condition (from the first run,
  at its sample rate; identity is the reference itself) and runN.flac, run N's reconstruction,
  24-bit FLAC clipped to [-1, 1] (what a player would do; the metrics are of the unclipped
  signal);
- img/KEY/: mel spectrograms of the reference and each reconstruction and their difference
  (spectra.py).
KEY is the file's name relative to the data root, made safe, plus a hash of it. The report is
written into a hidden folder inside DIR and moved into place when complete (`staged`): a failed
or interrupted run leaves the previous report as it was, never a half-written one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
from torch import Tensor

from audioae.errors import AudioAEError
from audioae.evaluate import check_outputs, evaluate
from audioae.files import atomic_write, check_new, check_writable

PAGE = "index.html"


def check_report(folder: Path, force: bool) -> None:
    """Before any computing: the report folder writable, its page new unless `force`, and
    matplotlib there to draw it."""
    from audioae.report.spectra import require_matplotlib

    require_matplotlib()
    check_writable(folder)
    check_new([folder / PAGE], force)


def labels(checkpoints: list[str]) -> list[str]:
    """A distinct short name per model (audioae.runs.run_name; -2, -3, ... for repeats)."""
    from audioae.runs import run_name

    names: list[str] = []
    for ckpt in checkpoints:
        base = name = run_name(ckpt)
        n = 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def file_key(file: str) -> str:
    """A folder name for a data file: its relative name made safe, plus 8 hex digits of its
    SHA-1 so that "a/b.wav" and "a_b.wav" stay apart."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", file).strip("._")[-60:]
    return f"{safe}-{hashlib.sha1(file.encode()).hexdigest()[:8]}"


def audio_name(name: str, run: int | None) -> str:
    """The file of a signal under audio/KEY/: runN.flac for run N's reconstruction."""
    return f"run{run + 1}.flac" if run is not None else f"{name}.flac"


class AudioWriter:
    """evaluate's keep_audio for run number `run` (0-based): writes its reconstructions, and
    with `references` the reference and the low-pass conditions, into folder/audio/KEY/."""

    def __init__(self, folder: Path, run: int, references: bool):
        self.folder, self.run, self.references = folder, run, references

    def __call__(self, file: str, signals: dict[str, Tensor], rate: int) -> None:
        out = self.folder / "audio" / file_key(file)
        out.mkdir(parents=True, exist_ok=True)
        for name, audio in signals.items():
            if name == "model":
                path = out / audio_name(name, self.run)
            elif self.references and name != "identity":  # identity is the reference
                path = out / audio_name(name, None)
            else:
                continue
            # libsndfile wraps integer samples around, not clips, beyond full scale
            samples = np.clip(audio.detach().cpu().float().numpy().T, -1.0, 1.0)
            with atomic_write(path) as tmp:
                sf.write(tmp, samples, rate, subtype="PCM_24")


def evaluate_runs(
    checkpoints: list[str],
    inputs: list[str],
    outs: list[Path],
    report: Path | None = None,
    force: bool = False,
    **options,
) -> list[dict]:
    """evaluate() every model of `checkpoints` on `inputs` into its folder of `outs` (options
    as evaluate's) and, with `report`, write the listening report there (module docstring).
    Returns the results of each run."""
    if len(set(map(str, outs))) != len(outs):
        raise AudioAEError(f"two runs would write to the same --out folder: {outs}")
    for out in outs:
        check_outputs(out, force)
    if report is not None:
        check_report(report, force)
    results = []
    with staged(report) as stage:
        for i, (ckpt, out) in enumerate(zip(checkpoints, outs)):
            keep = None if stage is None else AudioWriter(stage, i, references=i == 0)
            if len(checkpoints) > 1:
                print(f"\n[{i + 1}/{len(checkpoints)}] {ckpt}")
            results.append(evaluate(ckpt, inputs, out, force=force, keep_audio=keep, **options))
        if stage is not None:
            from audioae.report.page import write_page

            write_page(stage, results, labels(checkpoints))
    if report is not None:
        print(f"report: {report / PAGE}")
    return results


@contextmanager
def staged(report: Path | None) -> Iterator[Path | None]:
    """A hidden folder in `report` to write the whole report into; on success its audio/,
    img/, assets and page replace the report's (the page last), on any failure it is removed
    (and `report` too when this created it), so that no half-written report is left."""
    if report is None:
        yield None
        return
    created = not report.exists()
    report.mkdir(parents=True, exist_ok=True)
    stage = report / f".tmp-{os.getpid()}-report"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
        names = [*sorted(p.name for p in stage.iterdir() if p.name != PAGE), PAGE]
        for name in names:  # a folder is swapped: the old one moved aside, then removed
            old = report / f".tmp-{os.getpid()}-old-{name}"
            if (report / name).is_dir():
                (report / name).rename(old)
            os.replace(stage / name, report / name)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not any(report.iterdir()):
            report.rmdir()
        raise
    shutil.rmtree(stage, ignore_errors=True)
