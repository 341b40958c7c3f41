"""Pre-encoded latents read back: folders that `audioae-pre-encode` or stable-audio-tools'
pre_encode.py wrote (NAME.npy latents (D, L) with NAME.json metadata beside, in any sub-folder),
as a plain PyTorch Dataset for models trained on latents.

    ds = PreEncoded("latents/songs", latent_crop_length=256)
    latents, info = ds[0]      # (D, 256) float32; info: the item's .json plus
                               # padding_mask (256,) bool, latent_crop_start, latent_filename

It follows stable-audio-tools' PreEncodedDataset (`dataset_type: pre_encoded`) where that is
sound, and differs where it is not:
- crops start uniformly at random among the starts that keep the crop inside the unpadded frames
  (the frames up to the last 1 of padding_mask); an item shorter than the crop is zero-padded to
  it with padding_mask 0 there, so that every crop has the same length and batches collate;
- the length filters (`min_length_sec`, `max_length_sec`, on the json's seconds_total) drop
  items once, when the dataset is made, instead of redrawing a random item at each access;
- an unreadable item is an error naming it, never silently replaced by another.
Randomness comes from torch's generator, which DataLoader seeds differently in each worker.
Hidden files (a killed writer's `.tmp-*`) are never read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from audioae.data.audio_dir import DataError, MissingDataError


def find_latents(root: str, extension: str = "npy") -> list[str]:
    """Latent files under root (recursive, hidden names and folders skipped), sorted; SAT's
    filelist.txt at the root, when present, lists them instead."""
    listed = os.path.join(root, "filelist.txt")
    if os.path.exists(listed):
        with open(listed) as f:
            return [os.path.join(root, line.strip()) for line in f if line.strip()]
    found = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            hidden = name.startswith(".")
            codes = name.endswith(".codes." + extension)  # audioae-encode's, beside its latents
            if name.endswith("." + extension) and not hidden and not codes:
                found.append(os.path.join(folder, name))
    return sorted(found)


class PreEncoded(Dataset):
    """Items of pre-encoded folders, cropped to `latent_crop_length` frames.

    path: a folder or a list of folders.
    latent_crop_length: frames per item (None: whole items, which then differ in length).
    random_crop: a random start within the unpadded frames; False: from frame 0.
    min_length_sec, max_length_sec: keep items whose seconds_total is within them.
    latent_extension: the latents' file ending (npy)."""

    def __init__(
        self,
        path: str | Sequence[str],
        latent_crop_length: int | None = None,
        random_crop: bool = True,
        min_length_sec: float | None = None,
        max_length_sec: float | None = None,
        latent_extension: str = "npy",
    ):
        roots = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        if latent_crop_length is not None and latent_crop_length < 1:
            raise DataError(f"latent_crop_length={latent_crop_length}: must be >= 1 (or null)")
        self.files: list[str] = []
        for root in map(str, roots):
            if not os.path.isdir(root):
                raise MissingDataError(f"{root}: no such folder of pre-encoded latents")
            found = find_latents(root, latent_extension)
            if not found:
                raise MissingDataError(f"{root}: no .{latent_extension} latents found")
            self.files += found
        self.extension = latent_extension
        self.crop, self.random_crop = latent_crop_length, random_crop
        if min_length_sec is not None or max_length_sec is not None:
            lo = -np.inf if min_length_sec is None else min_length_sec
            hi = np.inf if max_length_sec is None else max_length_sec
            self.files = [f for f in self.files if lo <= self.metadata(f)["seconds_total"] <= hi]
            if not self.files:
                raise DataError(
                    f"no pre-encoded item of {', '.join(map(str, roots))} lasts between "
                    f"min_length_sec={min_length_sec} and max_length_sec={max_length_sec}"
                )

    def __len__(self) -> int:
        return len(self.files)

    def metadata(self, latent_file: str) -> dict:
        """The .json beside a latent file."""
        sidecar = str(Path(latent_file).with_suffix(".json"))
        try:
            with open(sidecar) as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            raise DataError(f"{sidecar}: cannot read the item's metadata ({e})") from None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        name = self.files[index]
        info = self.metadata(name)
        try:
            latents = torch.from_numpy(np.load(name, allow_pickle=False))
        except (OSError, ValueError) as e:
            raise DataError(f"{name}: cannot read latents ({e})") from None
        if latents.dim() == 3 and latents.shape[0] == 1:
            latents = latents[0]
        if latents.dim() != 2:
            raise DataError(f"{name}: latents of shape {tuple(latents.shape)}, expected (D, L)")
        frames = latents.shape[-1]
        mask = torch.as_tensor(info.get("padding_mask", [1] * frames), dtype=torch.bool)
        if mask.shape[0] != frames:
            raise DataError(f"{name}: padding_mask of {mask.shape[0]} frames, latents of {frames}")
        start = 0
        if self.crop is not None:
            valid = int(mask.nonzero().max()) + 1 if mask.any() else 0
            if self.random_crop and valid > self.crop:
                start = int(torch.randint(0, valid - self.crop + 1, ()))
            latents, mask = latents[:, start : start + self.crop], mask[start : start + self.crop]
            if latents.shape[-1] < self.crop:  # shorter than a crop: pad, masked out
                pad = self.crop - latents.shape[-1]
                latents = torch.nn.functional.pad(latents, (0, pad))
                mask = torch.nn.functional.pad(mask, (0, pad))
            info["latent_crop_length"] = self.crop
        info.update(padding_mask=mask, latent_crop_start=start, latent_filename=name)
        return latents.float() if latents.is_floating_point() else latents, info
