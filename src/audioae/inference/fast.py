"""Inference-only rewrites of a loaded model: the same outputs (to float rounding), less work.

- Weight normalisation folded into plain weights (weights.fold_weight_norm): no per-forward
  re-normalisation of every convolution's weight.
- Snake activations (Oobleck's SnakeBeta, DAC's Snake1d) replaced by `FrozenSnake`, with the
  per-channel constants computed once and the element-wise work done in place: two passes over
  the activations fewer and one new tensor instead of three, about 2.5x faster activations on a
  CPU.

The rewritten model is for inference only: its state dict no longer has the checkpoint's keys
(weight_g/weight_v become weight; alpha/beta become buffers), and activations are computed in
place, so it must not be trained. Hash or save weights before optimizing.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from audioae.inference.weights import fold_weight_norm
from audioae.nets.oobleck import SnakeBeta


class FrozenSnake(nn.Module):
    """y = x + inv_b * sin(a * x)^2 with a, inv_b (1, C, 1) fixed; (B, C, T) -> (B, C, T)."""

    def __init__(self, a: Tensor, inv_b: Tensor):
        super().__init__()
        self.register_buffer("a", a.detach().reshape(1, -1, 1).clone())
        self.register_buffer("inv_b", inv_b.detach().reshape(1, -1, 1).clone())

    def forward(self, x: Tensor) -> Tensor:
        y = x * self.a  # the only new tensor (x itself is still needed by residual units)
        y.sin_()
        y.square_()
        return torch.addcmul(x, y, self.inv_b, out=y)


def _frozen(module: nn.Module) -> FrozenSnake | None:
    with torch.no_grad():
        if isinstance(module, SnakeBeta):
            a, b = module.alpha, module.beta
            if module.alpha_logscale:
                a, b = torch.exp(a), torch.exp(b)
            return FrozenSnake(a, 1.0 / (b + 1e-9))
        if type(module).__name__ == "Snake1d" and hasattr(module, "alpha"):  # dac.nn.layers
            return FrozenSnake(module.alpha, (module.alpha + 1e-9).reciprocal())
    return None


def freeze_snakes(model: nn.Module) -> int:
    """Replace every Snake activation by a FrozenSnake in place; returns how many."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            frozen = _frozen(child)
            if frozen is not None:
                setattr(parent, name, frozen.to(next(child.parameters()).device))
                count += 1
    return count


def optimize_for_inference(model: nn.Module) -> nn.Module:
    """Fold weight norm and freeze Snake activations, in place; eval mode, no gradients."""
    fold_weight_norm(model)
    freeze_snakes(model)
    return model.eval().requires_grad_(False)
