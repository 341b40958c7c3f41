"""Validation during training: reconstruction losses and metrics on held-out audio."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import Dataset

from audioae.build import build
from audioae.metrics import mel_distance, si_sdr, stft_distance
from audioae.train.demo import HELD_OUT


def validation_batches(cfg: DictConfig, dataset: Dataset) -> list[Tensor]:
    """`trainer.val_batches` fixed batches: from `trainer.val_path` (the training data's
    class on another folder) or else held-out draws of the training data."""
    t = cfg.trainer
    if t.get("val_path"):
        dataset = build(cfg.data, "data", path=t.val_path)
    first = HELD_OUT + 2**20  # beyond the demo clips
    b = t.batch_size
    return [
        torch.stack([dataset[first + i * b + j] for j in range(b)]) for i in range(t.val_batches)
    ]


@torch.no_grad()
def validate(model: nn.Module, batches: list[Tensor], losses: nn.Module) -> dict[str, float]:
    """Mean over `batches` of every loss term and of SI-SDR, mel and STFT distance, with
    deterministic latents (the VAE mean)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
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
    model.train(was_training)
    return sums
