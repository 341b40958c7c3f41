"""Demos and validation on held-out audio, through the real `audioae-train`: a held-out folder
(`trainer.val_path`) or the training folder's own held-out files (`data.holdout`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from audioae.build import build
from audioae.inference.loading import load_model
from audioae.train.setup import Losses
from audioae.train.validate import held_out_data, validate, validation_batches
from conftest import ON_CPU, run_cli, scalars

pytestmark = pytest.mark.slow


def _noise_files(folder: Path, count: int, level: float, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        noise = rng.uniform(-level, level, (8000, 2)).astype(np.float32)  # 0.5 s at 16 kHz
        sf.write(folder / f"{i}.wav", noise, 16000, subtype="FLOAT")


def _validate_again(run: Path, val_path: str | None) -> tuple[dict[str, float], object]:
    """The validation metrics of the run's final weights on the held-out data that `val_path`
    selects, computed here; and that held-out data."""
    cfg = OmegaConf.load(run / "config.yaml")
    cfg.trainer.val_path = val_path
    model, _ = load_model(run, ema=False)
    held = held_out_data(cfg, build(cfg.data, "data"))
    losses = Losses({k: build(v, f"loss.terms.{k}") for k, v in cfg.loss.terms.items()})
    return validate(model, validation_batches(cfg, held), losses), held


@pytest.mark.parametrize("val_folder", [True, False], ids=["val_path", "holdout"])
def test_validation_and_demos_use_held_out_audio(tmp_path, val_folder):
    train, val, run = tmp_path / "train", tmp_path / "val", tmp_path / "run"
    _noise_files(train, 6, level=0.5, seed=0)  # loud training noise, quiet held-out noise
    _noise_files(val, 2, level=0.05, seed=1)
    extra = [f"trainer.val_path={val}"] if val_folder else []
    proc = run_cli(
        "audioae-train",
        "experiment=smoke",
        "data=audio_dir",
        f"data.path={train}",
        *extra,
        "trainer.val_every=2",
        "trainer.val_batches=2",
        "trainer.demo_every=2",
        "trainer.num_demos=2",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        env=ON_CPU,
    )
    # data.holdout=0.05 of 6 files: at least one is held out, listed and announced
    cfg = OmegaConf.load(run / "config.yaml")
    dataset = build(cfg.data, "data")
    listed = (run / "holdout.txt").read_text().splitlines()
    assert listed == dataset.held_out_names and 1 <= len(listed) < 6
    assert f"6 file(s) under {train}: {6 - len(listed)} for training, {len(listed)} held out" in (
        proc.stdout + proc.stderr
    )

    logged = {
        tag.removeprefix("val/"): values
        for tag in ("val/spec/mrstft", "val/time/l1", "val/si_sdr", "val/mel_distance")
        if (values := scalars(run, tag))
    }
    assert logged.keys() == {"spec/mrstft", "time/l1", "si_sdr", "mel_distance"}
    assert all(sorted(v) == [2] for v in logged.values())  # one validation, at step 2
    logged = {k: v[2] for k, v in logged.items()}
    assert all(math.isfinite(v) for v in logged.values())
    assert logged["mel_distance"] > 0 and logged["spec/mrstft"] > 0 and logged["si_sdr"] < 30

    # The logged values are those of the run's weights on the held-out audio, recomputed here...
    again, held = _validate_again(run, str(val) if val_folder else None)
    for k, v in logged.items():
        assert v == pytest.approx(again[k], rel=1e-4, abs=1e-5), k
    if val_folder:
        assert {Path(f.path).parent for f in held.files} == {val}
        # ...and not those of other audio (the training folder's loud held-out files).
        other, _ = _validate_again(run, None)
        for k in ("spec/mrstft", "time/l1", "mel_distance"):
            assert other[k] != pytest.approx(logged[k], rel=0.05), k
    else:
        assert sorted(Path(f.path).name for f in held.files) == listed

    # The demo clips are the first held-out items (16-bit WAVs).
    for i in range(2):
        real, rate = sf.read(run / "demos" / "step_00000002" / f"{i}_real.wav", dtype="float32")
        assert rate == 16000
        np.testing.assert_allclose(real.T, held[i].numpy(), atol=1.0 / 32768 + 1e-6)
        peak = np.abs(real).max()
        assert (0.03 < peak <= 0.05 + 1e-4) if val_folder else (0.3 < peak <= 0.5 + 1e-4)
    assert not torch.equal(held[0], dataset[0])
