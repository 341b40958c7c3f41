"""Time-domain reconstruction losses."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class TimeDomain(nn.Module):
    """`forward(recon, real)` -> {"time/l1": mean |recon - real|,
    "time/l2": mean (recon - real)^2}."""

    names = ("time/l1", "time/l2")

    def forward(self, recon: Tensor, real: Tensor) -> dict[str, Tensor]:
        return {"time/l1": F.l1_loss(recon, real), "time/l2": F.mse_loss(recon, real)}
