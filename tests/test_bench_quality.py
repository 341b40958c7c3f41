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


@pytest.mark.slow
def test_quality_curves_end_to_end(tmp_path):
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
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "bench/quality.py"), "--recipes", "smoke", "--seeds", "0"]
    cmd += ["--budget", "100000", "--max-steps", "2", "--checkpoint-every", "1"]
    cmd += ["--test-seconds", "0.5", "--data", str(data), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
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
