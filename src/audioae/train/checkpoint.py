"""Checkpoints: Accelerate's `save_state` folder plus our own state, written atomically.

Layout of a run directory:
    config.yaml                      the fully resolved config
    tb/                              TensorBoard event files
    checkpoints/step_00000100/       Accelerate: model.safetensors (the autoencoder), optimizer
                                     states, RNG states; ours: discriminator.safetensors,
                                     ema.safetensors, state.pt (step counters, schedulers),
                                     config.yaml

Nothing here is loaded by unpickling arbitrary objects: weights are safetensors, the rest is
read with `torch.load(weights_only=True)` (Accelerate's own loader does the same). We do not use
`register_for_checkpointing`, whose files Accelerate loads with `weights_only=False`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from accelerate import Accelerator
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file
from torch import nn

from audioae.errors import CheckpointError

CHECKPOINTS = "checkpoints"
STATE = "state.pt"


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def save_checkpoint(
    acc: Accelerator,
    run_dir: Path,
    step: int,
    cfg: DictConfig,
    modules: dict[str, nn.Module],
    state: dict,
) -> Path:
    """Write checkpoints/step_N into a temporary folder, then rename it into place, so that a
    crash during the save leaves earlier checkpoints untouched. `modules` are saved as
    NAME.safetensors, `state` (plain Python data and tensors) as state.pt."""
    final = Path(run_dir) / CHECKPOINTS / checkpoint_name(step)
    tmp = final.with_name(final.name + ".tmp")
    try:
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        if acc.is_main_process:
            for name, module in modules.items():
                tensors = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
                save_file(tensors, tmp / f"{name}.safetensors")
            torch.save(state, tmp / STATE)
            OmegaConf.save(cfg, tmp / "config.yaml", resolve=True)
            if final.exists():  # re-saving the same step (e.g. after a resume): replace it
                old = final.with_name(final.name + ".old")
                final.rename(old)
                tmp.rename(final)
                shutil.rmtree(old)
            else:
                tmp.rename(final)
    except OSError as e:  # full disk, unwritable folder: keep every complete checkpoint
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"cannot write checkpoint {final}: {e.strerror or e}; earlier checkpoints are kept"
        ) from None
    acc.wait_for_everyone()
    return final


def load_checkpoint(acc: Accelerator, path: Path, modules: dict[str, nn.Module]) -> dict:
    """Restore what `save_checkpoint` wrote; returns its `state`."""
    acc.load_state(str(path))
    for name, module in modules.items():
        file = path / f"{name}.safetensors"
        if not file.exists():
            raise CheckpointError(f"{path}: no {file.name} (was the run configured differently?)")
        module.load_state_dict(load_file(file))  # copied onto the module's device
    return torch.load(path / STATE, weights_only=True)


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or the newest complete checkpoint of a run folder."""
    path = Path(path)
    if (path / "model.safetensors").exists():
        return path
    folder = path / CHECKPOINTS if (path / CHECKPOINTS).is_dir() else path
    candidates = sorted(p for p in folder.glob("step_*") if p.is_dir() and p.name[5:].isdigit())
    if not candidates:
        raise CheckpointError(f"resume: no checkpoint found in {path}")
    return candidates[-1]
