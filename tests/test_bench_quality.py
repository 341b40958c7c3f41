"""bench/quality.py end to end on a tiny budget: train, evaluate every checkpoint per category,
write the curves (PNG) and every point (JSON)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


SAT_PYTHON = Path("/tmp/satvenv/bin/python")  # docs/benchmarks.md, "SAT's throwaway venv"


def make_data(tmp_path: Path) -> Path:
    """train/ and test/ of music (stereo noise) and speech (dual-mono noise), 1 s at 16 kHz."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for split, n in (("train", 3), ("test", 2)):
        for cat in ("music", "speech"):
            (data / split / cat).mkdir(parents=True)
            for i in range(n):
                x = rng.standard_normal((16000, 2)) * 0.1
                if cat == "speech":
                    x[:, 1] = x[:, 0]  # dual mono
                sf.write(data / split / cat / f"{i}.wav", x, 16000)
    return data


def quality(data: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "bench/quality.py"), *args, "--budget", "100000"]
    cmd += ["--max-steps", "2", "--checkpoint-every", "1", "--test-seconds", "0.5"]
    cmd += ["--data", str(data), "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_quality_curves_end_to_end(tmp_path):
    data = make_data(tmp_path)
    out = tmp_path / "out"
    proc = quality(data, out, "--recipes", "smoke", "--seeds", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    result = json.loads((out / "quality.json").read_text())
    assert result["categories"] == ["overall", "music", "speech"]
    run = result["runs"]["smoke"]["0"]
    assert [p["step"] for p in run["points"]] == [1, 2]
    assert 0 < run["points"][0]["cpu_s"] <= run["points"][1]["cpu_s"]
    for point in [run["untrained"], *(p["metrics"] for p in run["points"])]:
        for cat in result["categories"]:
            assert set(point[cat]["model"]) == {"mel", "stft", "si_sdr", "dependence"}
            assert all(math.isfinite(v) for v in point[cat]["model"].values())
            assert point[cat]["model"]["dependence"] >= 0  # two test files: one pair
    assert result["references"]["speech"]["identity"]["dependence"] == pytest.approx(1.0)
    # identity is the best possible: distance 0; a low-pass is worse than identity
    assert result["references"]["music"]["identity"]["mel"] == pytest.approx(0, abs=1e-6)
    assert result["references"]["music"]["lowpass4k"]["mel"] > 0.1
    # the test files were cropped to 0.5 s
    assert sf.info(out / "test" / "music" / "0.wav").frames == 8000

    image = matplotlib.image.imread(out / "quality.png")
    assert image.ndim == 3 and image.shape[0] > 400 and image.shape[1] > 800
    assert "smoke s0" in proc.stdout  # the summary table


def test_stable_audio_tools_runs_need_its_venv(tmp_path):
    """PRESET@sat without stable-audio-tools' venv: one line naming the missing Python."""
    missing = tmp_path / "no_venv/bin/python"
    proc = quality(make_data(tmp_path), tmp_path / "out", "--recipes", "smoke@sat",
                   "--sat-python", str(missing))  # fmt: skip
    assert proc.returncode != 0
    assert proc.stderr.strip() == (
        f"quality: {missing}: no such Python; build stable-audio-tools' venv as "
        "docs/benchmarks.md says, or pass --sat-python"
    )


@pytest.mark.slow
@pytest.mark.skipif(not SAT_PYTHON.exists(), reason="no stable-audio-tools venv at /tmp/satvenv")
def test_stable_audio_tools_trainer_points_are_evaluated(tmp_path):
    """smoke@sat: stable-audio-tools' own trainer on the preset's converted config; its
    Lightning checkpoints are the points, evaluated like audioae's, from the same initial
    weights (seed 0) as audioae's run of the preset."""
    data = make_data(tmp_path)
    out = tmp_path / "out"
    smoke = "smoke:trainer.data_init=null"  # stable-audio-tools' init: PyTorch's
    proc = quality(data, out, "--recipes", f"{smoke},smoke@sat", "--seeds", "0", "--jobs", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = json.loads((out / "quality.json").read_text())["runs"]
    sat, ours = runs["smoke@sat"]["0"], runs[smoke]["0"]
    assert [p["step"] for p in sat["points"]] == [1, 2]
    assert all(p["checkpoint"].endswith(f"step={p['step']}.ckpt") for p in sat["points"])
    for cat in ("music", "speech"):
        assert sat["untrained"][cat]["model"]["mel"] == pytest.approx(
            ours["untrained"][cat]["model"]["mel"], rel=1e-4
        )
