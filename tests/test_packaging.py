"""conf/ and experiments/ ship inside the wheel, so a non-editable install finds them."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_carries_the_config_tree(tmp_path):
    pytest.importorskip("hatchling", reason="the build backend (the [dev] extra)")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("audioae-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in [
        "audioae/conf/train.yaml",
        "audioae/conf/encoder/oobleck.yaml",
        "audioae/conf/experiment/smoke.yaml",
        "audioae/conf/experiment/stable_audio_2_0_vae.yaml",
    ]:
        assert name in names
    assert "audioae/config.py" in names
