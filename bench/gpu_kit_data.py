"""The GPU kit's data: a trimmed copy of bench/real_audio.py's set that fits in a device call
beside the wheels (bench/gpu_kit.py prepare).

Every category of train/ and test/ is kept, the two apart: train files become an excerpt from
their middle (--train-seconds), test files their first --test-seconds (what bench/quality.py
evaluates on), both as 16-bit FLAC (the set's 24 bits cost a third more and matter nowhere
near a trained model's error); speech stays dual mono (two equal channels, checked).
instruments/ and drums/ (3 MB) are copied as they are. data/manifest.json says what each file
was cut from; LICENSES.txt is the set's own.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

AUDIO = {".wav", ".flac", ".ogg"}


def pick(files: list[Path], count: int) -> list[Path]:
    """`count` files spread over the sorted list (all when count is 0 or more than there are)."""
    if not count or count >= len(files):
        return files
    return [files[round(i * (len(files) - 1) / (count - 1))] if count > 1 else files[0]
            for i in range(count)]  # fmt: skip


def trim(
    real: Path, out: Path, train_seconds: float, test_seconds: float, train_files: int
) -> None:
    if not (real / "train").is_dir() or not (real / "test").is_dir():
        sys.exit(f"gpu_kit: {real} needs train/ and test/: build it with bench/real_audio.py")
    shutil.rmtree(out, ignore_errors=True)
    manifest: dict = {
        "source": "bench/cache/real_audio (bench/real_audio.py; its manifest.json has the sources)",
        "train_seconds": train_seconds,
        "test_seconds": test_seconds,
        "format": "FLAC, 16-bit",
        "files": [],
    }
    for split, seconds in (("train", train_seconds), ("test", test_seconds)):
        for category in sorted(p for p in (real / split).iterdir() if p.is_dir()):
            files = sorted(p for p in category.iterdir() if p.suffix.lower() in AUDIO)
            chosen = pick(files, train_files) if split == "train" else files
            for path in chosen:
                info = sf.info(path)
                length = min(info.frames, round(seconds * info.samplerate))
                start = (info.frames - length) // 2 if split == "train" else 0
                audio, rate = sf.read(path, start=start, frames=length, always_2d=True)
                if category.name == "speech" and not np.array_equal(audio[:, 0], audio[:, -1]):
                    sys.exit(f"gpu_kit: {path} is not dual mono")
                target = out / split / category.name / path.with_suffix(".flac").name
                target.parent.mkdir(parents=True, exist_ok=True)
                sf.write(target, audio, rate, format="FLAC", subtype="PCM_16")
                manifest["files"].append({
                    "file": str(target.relative_to(out)),
                    "from": str(path.relative_to(real)),
                    "start_s": round(start / rate, 3),
                    "seconds": round(length / rate, 3),
                    "channels": audio.shape[1],
                })  # fmt: skip
    for folder in ("instruments", "drums"):
        if (real / folder).is_dir():
            shutil.copytree(real / folder, out / folder)
            manifest["files"] += [{"file": f"{folder}/{p.name}", "from": f"{folder}/{p.name}"}
                                  for p in sorted((real / folder).iterdir())]  # fmt: skip
    if (real / "LICENSES.txt").is_file():
        shutil.copy(real / "LICENSES.txt", out / "LICENSES.txt")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    counts: dict[str, int] = {}
    for f in manifest["files"]:
        group = str(Path(f["file"]).parent)
        counts[group] = counts.get(group, 0) + 1
    print("  data/: " + ", ".join(f"{g} {n}" for g, n in counts.items()))
