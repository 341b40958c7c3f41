"""Shared helpers: compose the real config tree, run the real entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from audioae.config import config_dir

# Under `pytest -n N` (make test runs 2 workers) the workers share the machine's cores: each takes
# its share of threads, and so do the commands it runs (run_cli copies os.environ).
if _workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    import torch

    _threads = max(1, (os.cpu_count() or 1) // int(_workers))
    os.environ["OMP_NUM_THREADS"] = str(_threads)
    torch.set_num_threads(_threads)

CONF = config_dir()
EXPERIMENTS = CONF / "experiment"


def compose_train(*overrides: str) -> DictConfig:
    """The train config as `audioae-train OVERRIDES...` would compose it."""
    with initialize_config_dir(str(CONF), version_base=None):
        return compose("train", overrides=list(overrides))


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


# For bitwise comparisons of training runs: Accelerate's switch to the CPU. On CUDA, cuDNN's
# TF32 and non-deterministic kernels make two runs agree only to about 1e-3 (see README).
ON_CPU = {"ACCELERATE_USE_CPU": "true"}


def run_cli(
    command: str, *args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None
):
    """Run a console script of this package in a subprocess, as a user would."""
    exe = Path(sys.executable).with_name(command)
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore", **(env or {})}
    proc = subprocess.run(
        [str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{command} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def scalars(run: Path, tag: str) -> dict[int, float]:
    """TensorBoard scalars of a run directory: {step: value} for `tag`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    return {e.step: e.value for e in events.Scalars(tag)}


@pytest.fixture
def smoke_cfg() -> DictConfig:
    return compose_train("experiment=smoke")


def random_snake_model(*overrides: str, seed: int = 0):
    """A model from a train config (compose_train), in eval mode, with random (non-default)
    Snake parameters, so that exports are checked on weights that are not the defaults."""
    import torch

    from audioae.build import build_autoencoder

    torch.manual_seed(seed)
    cfg = compose_train(*overrides)
    model = build_autoencoder(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("alpha", "beta")):
                p.normal_(0, 0.3)
    return model, cfg
