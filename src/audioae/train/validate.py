"""Validation during training: reconstruction losses and metrics on held-out audio."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import Dataset

from audioae import runs
from audioae.errors import ConfigError
from audioae.metrics import mel_distance, si_sdr, stft_distance

log = logging.getLogger(__name__)

# Held-out item numbers of the validation batches start here, beyond the demo clips (0, 1, ...).
VAL_FIRST = 2**20


def held_out_data(cfg: DictConfig, dataset: Dataset, run_dir: Path | None = None) -> Dataset:
    """The audio of demos and validation: every file under `trainer.val_path` when it is set,
    else the training data's own held-out part (`dataset.held_out()`). The files `dataset`
    keeps out of training are listed in run_dir/holdout.txt (when run_dir is given)."""
    val_path = cfg.trainer.get("val_path") or None
    held = dataset.held_out(val_path)
    if val_path is not None:
        check_held_out(val_path, cfg.data.get("path"), dataset, held)
    names = dataset.held_out_names
    if run_dir is not None and names:
        listing = Path(run_dir) / runs.HOLDOUT
        listing.write_text("".join(f"{name}\n" for name in names))
        unused = " (unused beside trainer.val_path: data.holdout=0 trains on them)"
        log.info(
            "%d file(s) held out of training, listed in %s%s",
            len(names),
            listing,
            unused if val_path else "",
        )
    return held


def check_held_out(val_path: str, data_path: str | None, dataset: Dataset, held: Dataset) -> None:
    """Refuse a `trainer.val_path` that holds training files (it is data.path, or a folder
    inside it or around it), naming both keys: validation on them would not be held out."""
    if data_path is None or not hasattr(dataset, "files") or not hasattr(held, "files"):
        return
    roots = [os.path.abspath(os.path.expanduser(str(p))) for p in (val_path, data_path)]
    if not any(os.path.commonpath(roots) == root for root in roots):
        return  # neither folder holds the other: no file in both
    trained = {os.path.abspath(f.path) for f in dataset.files}
    shared = sorted(f.path for f in held.files if os.path.abspath(f.path) in trained)
    if shared:
        raise ConfigError(
            f"trainer.val_path={val_path}: {len(shared)} of its {len(held.files)} files are "
            f"training files of data.path={data_path} (e.g. {shared[0]}), so validation and "
            "demos would not be held out; use a folder outside data.path"
        )


def validation_batches(cfg: DictConfig, held: Dataset) -> list[Tensor]:
    """`trainer.val_batches` fixed batches of `trainer.batch_size` held-out items
    (from `held_out_data`)."""
    t = cfg.trainer
    b = t.batch_size
    return [
        torch.stack([held[VAL_FIRST + i * b + j] for j in range(b)]) for i in range(t.val_batches)
    ]


@torch.no_grad()
def validate(model: nn.Module, batches: list[Tensor], losses: nn.Module) -> dict[str, float]:
    """Mean over `batches` of every loss term and of SI-SDR, mel and STFT distance, with
    deterministic latents (the VAE mean); and `dependence`, the input dependence of
    audioae-eval (evaluate.Dependence) over consecutive held-out items: the mel distance between
    their reconstructions over that between the items, 0 when the output ignores the input."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
    fakes, reals = [], []
    for real in batches:
        inputs, real = model.inputs_and_targets(real.to(device))
        fake, _ = model(inputs, sample=False)
        fake = fake.float()
        values = {
            **losses(fake, real),
            "si_sdr": si_sdr(fake, real),
            "mel_distance": mel_distance(fake, real, model.sample_rate),
            "stft_distance": stft_distance(fake, real),
        }
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + float(v) / len(batches)
        fakes.append(fake)
        reals.append(real)
    fake, real = torch.cat(fakes), torch.cat(reals)
    if len(real) > 1:
        between = mel_distance(real[1:], real[:-1], model.sample_rate)
        if between > 0:
            sums["dependence"] = float(
                mel_distance(fake[1:], fake[:-1], model.sample_rate) / between
            )
    model.train(was_training)
    return sums
