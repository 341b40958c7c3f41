"""Adversarial objectives for one sub-discriminator, as pure functions of its outputs.

Hinge loss: Lim & Ye, "Geometric GAN", 2017 (arXiv:1705.02894), as used by MelGAN and EnCodec
(Défossez et al., "High Fidelity Neural Audio Compression", 2022, arXiv:2210.13438).
Least squares: Mao et al., "Least Squares Generative Adversarial Networks", ICCV 2017, as used
by HiFi-GAN and DAC (Kumar et al., "High-Fidelity Audio Compression with Improved RVQGAN", 2023).
Feature matching: Larsen et al., 2016; Kumar et al., "MelGAN", NeurIPS 2019.

`D(x)` is a logit map of any shape; every mean runs over all its elements (batch and positions).
Arguments come in the order (fake, real), as in `Discriminator.disc_loss(fake, real)`.
Averaging over sub-discriminators is the caller's job (`audioae.discriminators.base`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def hinge_disc(fake: Tensor, real: Tensor) -> Tensor:
    """mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))."""
    return torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()


def hinge_gen(fake: Tensor) -> Tensor:
    """-mean(D(fake))."""
    return -fake.mean()


def lsgan_disc(fake: Tensor, real: Tensor) -> Tensor:
    """mean((1 - D(real))^2) + mean(D(fake)^2)."""
    return (1 - real).square().mean() + fake.square().mean()


def lsgan_gen(fake: Tensor) -> Tensor:
    """mean((1 - D(fake))^2)."""
    return (1 - fake).square().mean()


def feature_matching(fake: Sequence[Tensor], real: Sequence[Tensor]) -> Tensor:
    """(1 / L) * sum over the L layers of mean |f_real - f_fake|, with f_real detached.

    fake, real: the L feature maps of one sub-discriminator, pairwise of equal shape.
    """
    if len(fake) != len(real) or not fake:
        raise ValueError(
            f"feature_matching needs equal, non-zero layer counts: {len(fake)} vs {len(real)}"
        )
    return torch.stack([_MeanAbsDiff.apply(f, r.detach()) for f, r in zip(fake, real)]).mean()


class _MeanAbsDiff(torch.autograd.Function):
    """mean |fake - real|, with a gradient for `fake` only (`real` is detached).

    The same value and gradient as `(real - fake).abs().mean()` with five passes over the
    feature map instead of seven and three large temporaries instead of five: the
    discriminators' feature maps are the largest tensors of a generator step. On a CPU the
    generator-side discriminator loss of the benchmark config takes 0.66 s instead of 0.80 s
    (docs/benchmarks.md)."""

    @staticmethod
    def forward(ctx, fake: Tensor, real: Tensor) -> Tensor:
        diff = fake - real
        loss = diff.abs().sum() / diff.numel()
        ctx.save_for_backward(diff.sign_())  # only the sign is needed for the gradient
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (sign,) = ctx.saved_tensors
        return sign * (grad / sign.numel()), None


# (discriminator objective, generator objective) by the name `discriminator.loss` takes.
GAN_LOSSES: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "hinge": (hinge_disc, hinge_gen),
    "lsgan": (lsgan_disc, lsgan_gen),
}
