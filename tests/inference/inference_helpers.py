"""Shared by tests/inference and tests/pretransforms: a tiny trained run (the real CLI, once per
session), a deterministic smoke model, and generated audio files."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audioae.build import build_autoencoder
from audioae.inference import fold_weight_norm
from conftest import compose_train, run_cli

_RUNS: dict[tuple[str, ...], Path] = {}


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run faster on one thread: with several, synchronisation dominates (and a
    busy machine makes it much worse). Use with `pytestmark = pytest.mark.usefixtures(...)`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def trained_run(tmp_path_factory, *overrides: str) -> Path:
    """`audioae-train experiment=smoke trainer.use_ema=true OVERRIDES` (2 steps), once per
    session for each set of overrides."""
    if overrides not in _RUNS:
        root = tmp_path_factory.mktemp("run")
        run = root / "run"
        args = ("experiment=smoke", "trainer.use_ema=true", f"hydra.run.dir={run}", *overrides)
        with single_threaded_subprocesses():
            run_cli("audioae-train", *args, cwd=root)
        _RUNS[overrides] = run
    return _RUNS[overrides]


@contextmanager
def single_threaded_subprocesses():
    """OMP_NUM_THREADS=1 for the commands run meanwhile (run_cli copies os.environ): the tiny
    models are faster on one thread, and much faster on a busy machine."""
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = old


def smoke_model(*overrides: str, seed: int = 0, fold: bool = True):
    """A randomly initialised smoke model (16 kHz stereo, ratio 8) in eval mode."""
    torch.manual_seed(seed)
    model = build_autoencoder(compose_train("experiment=smoke", *overrides)).eval()
    if fold:
        fold_weight_norm(model)
    return model


def tone(path: Path, rate: int, channels: int, seconds: float, freq: float = 440.0) -> Path:
    """A decaying two-partial tone with a little noise, written with soundfile."""
    t = np.arange(int(rate * seconds)) / rate
    rng = np.random.default_rng(int(freq))
    mono = np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(2 * np.pi * 2.5 * freq * t)
    mono = 0.4 * mono * np.exp(-t) + 0.01 * rng.standard_normal(len(t))
    data = np.stack([mono * (1 - 0.2 * c) for c in range(channels)], axis=1)
    sf.write(str(path), data.astype(np.float32), rate)
    return path
