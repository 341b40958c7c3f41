"""Latent statistics: per-channel and global mean and standard deviation, streamed and merged.

Each item adds (count, mean, M2) per channel computed in float64 over its unpadded frames; items
and processes are merged by Chan, Golub and LeVeque's parallel update ("Updating formulae and a
pairwise algorithm for computing sample variances", 1979):

    n = na + nb,  delta = mb - ma,  mean = ma + delta nb / n,  M2 = M2a + M2b + delta^2 na nb / n

so the result does not depend on how items were split over processes (up to float64 rounding).
std is the population standard deviation sqrt(M2 / n). `scale` is the global std: latents / scale
have unit variance, which is what a diffusion model's pretransform `scale` (stable-audio-tools'
and audioae's conf/pretransform/autoencoder.yaml) divides by.

stats.json (written by audioae-pre-encode; `audioae-export --latent-stats` stores it with the
model as latent_stats.json, `read_latent_stats(CKPT)` reads it back):
    {"channels": D, "frames": n, "mean": [D], "std": [D], "global_mean": m, "global_std": s,
     "scale": s, "model_hash": ..., "items": N}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audioae.errors import AudioAEError

STATS = "stats.json"  # audioae-pre-encode's output
LATENT_STATS = "latent_stats.json"  # beside an export's model.safetensors


@dataclass
class Moments:
    """Running per-channel count, mean and sum of squared deviations (M2), float64."""

    count: int = 0
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    m2: np.ndarray = field(default_factory=lambda: np.zeros(0))
    items: int = 0

    def add(self, latents: np.ndarray, mask: np.ndarray | None = None) -> None:
        """latents (D, L); mask (L,) of 0/1: only frames marked 1 count."""
        x = np.asarray(latents, dtype=np.float64)
        if mask is not None:
            x = x[:, np.asarray(mask).astype(bool)]
        self.items += 1
        if x.shape[1] == 0:
            return
        mean = x.mean(axis=1)
        self.merge(Moments(x.shape[1], mean, ((x - mean[:, None]) ** 2).sum(axis=1), 0))

    def merge(self, other: Moments) -> None:
        """Chan's update: self becomes the moments of both sets."""
        self.items += other.items
        if other.count == 0:
            return
        if self.count == 0:
            self.count, self.mean, self.m2 = other.count, other.mean.copy(), other.m2.copy()
            return
        if other.mean.shape != self.mean.shape:
            raise AudioAEError(
                f"latents with {other.mean.shape[0]} and {self.mean.shape[0]} channels mixed"
            )
        n = self.count + other.count
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.count / n)
        self.m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / n)
        self.count = n

    def to_state(self) -> dict:
        """Plain Python numbers (exact float64), for gathering across processes."""
        return {"count": self.count, "mean": self.mean.tolist(), "m2": self.m2.tolist(),
                "items": self.items}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict) -> Moments:
        return cls(state["count"], np.array(state["mean"]), np.array(state["m2"]), state["items"])

    def summary(self) -> dict:
        """What stats.json records (without the model's hash)."""
        if self.count == 0:
            return {"channels": int(self.mean.shape[0]), "frames": 0, "items": self.items}
        d = self.mean.shape[0]
        global_mean = float(self.mean.mean())  # every channel has the same count
        global_m2 = float(self.m2.sum() + self.count * ((self.mean - global_mean) ** 2).sum())
        global_std = math.sqrt(global_m2 / (self.count * d))
        return {
            "channels": int(d),
            "frames": int(self.count),
            "items": self.items,
            "mean": self.mean.tolist(),
            "std": np.sqrt(self.m2 / self.count).tolist(),
            "global_mean": global_mean,
            "global_std": global_std,
            "scale": global_std,
        }


def read_stats(path: str | Path, channels: int | None = None) -> dict:
    """A stats.json, checked for the keys a model's latent statistics need: per-channel mean
    and std of one length (that of the model's latents, `channels`, when given), finite, and
    a positive scale."""
    path = Path(path)
    try:
        stats = json.loads(path.read_text())
    except FileNotFoundError:
        raise AudioAEError(f"{path}: no such file") from None
    except (OSError, ValueError) as e:
        raise AudioAEError(f"{path}: not a readable stats.json ({e})") from None
    if not isinstance(stats, dict):
        raise AudioAEError(f"{path}: not audioae-pre-encode's stats.json (not a JSON object)")
    missing = [k for k in ("mean", "std", "global_std", "scale") if k not in stats]
    if missing:
        raise AudioAEError(f"{path}: not audioae-pre-encode's stats.json (no {', '.join(missing)})")
    for key in ("mean", "std"):
        values = stats[key]
        if not isinstance(values, list) or not all(_number(v) for v in values):
            raise AudioAEError(f'{path}: "{key}" must be a list of finite numbers')
    for key in ("global_std", "scale"):
        if not _number(stats[key]) or stats[key] <= 0:
            raise AudioAEError(
                f'{path}: "{key}" is {json.dumps(stats[key])}; expected a finite number above 0'
            )
    sizes = {len(stats["mean"]), len(stats["std"])} | (
        {stats["channels"]} if "channels" in stats else set()
    )
    if len(sizes) > 1:
        raise AudioAEError(
            f'{path}: "mean" has {len(stats["mean"])} channel(s), "std" '
            f'{len(stats["std"])}, "channels" is {stats.get("channels")}: they must agree'
        )
    if channels is not None and len(stats["mean"]) != channels:
        raise AudioAEError(
            f"{path}: statistics of {len(stats['mean'])} latent channel(s), but the model's "
            f"latents have {channels} (latent_dim); pre-encode with this model"
        )
    return stats


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def read_latent_stats(checkpoint: str | Path) -> dict | None:
    """The latent statistics stored with a model (audioae-export --latent-stats), or None."""
    from audioae.inference.loading import locate

    found = locate(checkpoint).weights.parent / LATENT_STATS
    return read_stats(found) if found.exists() else None
