"""Checkpoints: Accelerate's `save_state` folder plus the resolved config, written atomically.

Layout of a run directory:
    config.yaml                      the fully resolved config
    tb/                              TensorBoard event files
    checkpoints/step_00000100/       model.safetensors, optimizer.bin, ..., config.yaml
"""

from __future__ import annotations

import shutil
from pathlib import Path

from accelerate import Accelerator
from omegaconf import DictConfig, OmegaConf

from audioae.errors import CheckpointError

CHECKPOINTS = "checkpoints"


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def save_checkpoint(accelerator: Accelerator, run_dir: Path, step: int, cfg: DictConfig) -> Path:
    """Write checkpoints/step_N atomically: into a temporary folder, then rename."""
    final = Path(run_dir) / CHECKPOINTS / checkpoint_name(step)
    tmp = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        OmegaConf.save(cfg, tmp / "config.yaml", resolve=True)
        if final.exists():  # re-saving the same step (e.g. after a resume): replace it
            shutil.rmtree(final)
        tmp.rename(final)
    accelerator.wait_for_everyone()
    return final


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or the newest complete checkpoint of a run folder."""
    path = Path(path)
    if (path / "model.safetensors").exists():
        return path
    folder = path / CHECKPOINTS if (path / CHECKPOINTS).is_dir() else path
    candidates = sorted(
        p for p in folder.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp")
    )
    if not candidates:
        raise CheckpointError(f"resume: no checkpoint found in {path}")
    return candidates[-1]
