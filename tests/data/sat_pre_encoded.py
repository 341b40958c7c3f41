"""Write a folder as stable-audio-tools' pre_encode.py writes it (PreEncodedLatentsInferenceWrapper
.validation_step, SAT 0.0.19 and main): OUT/details.json, and per item
OUT/<rank>/<rank:03d><batch:06d><i:04d>.npy (the latents (C, N)) and .json (the SampleDataset's
info dict after PadCrop_Normalized_T: path, relpath, timestamps, seconds_start, seconds_total,
padding_mask resized to the latent length by F.interpolate(mode="nearest"), sample_rate,
load_time)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def write_sat_folder(
    out: Path,
    latents: list[np.ndarray],
    lengths: list[int],
    sample_size: int,
    sample_rate: int = 44100,
    batch_size: int = 2,
) -> list[Path]:
    """One item per latents[k] (C, N), made from an audio file of lengths[k] samples padded or
    cropped (from its start) to sample_size; returns the .npy paths in order."""
    out.mkdir(parents=True, exist_ok=True)
    details = {"model_config": "model_config.json", "dataset_config": "dataset.json",
               "sample_size": sample_size, "args": {"batch_size": batch_size}}  # fmt: skip
    (out / "details.json").write_text(json.dumps(details))
    (out / "0").mkdir(exist_ok=True)
    paths = []
    for k, (latent, n) in enumerate(zip(latents, lengths)):
        batch_idx, i = divmod(k, batch_size)
        latent_id = f"{0:03d}{batch_idx:06d}{i:04d}"
        np.save(out / "0" / f"{latent_id}.npy", latent)
        mask = torch.zeros([sample_size])
        mask[: min(n, sample_size)] = 1
        mask = F.interpolate(mask[None, None], size=latent.shape[1], mode="nearest")
        upper = max(0, n - sample_size)
        md = {
            "path": f"/data/audio/file{k}.wav",
            "relpath": f"file{k}.wav",
            "timestamps": [0.0, sample_size / (upper + sample_size)],
            "seconds_start": 0,
            "seconds_total": math.ceil(n / sample_rate),
            "padding_mask": mask.squeeze().int().numpy().tolist(),
            "sample_rate": sample_rate,
            "load_time": 0.01,
        }
        (out / "0" / f"{latent_id}.json").write_text(json.dumps(md))
        paths.append(out / "0" / f"{latent_id}.npy")
    return paths
