"""The adversary contract: a discriminator that also owns its GAN objectives.

The training loop only calls `disc_loss(fake.detach(), real)` on discriminator steps and
`gen_loss(fake, real)` on generator steps; which objective (hinge or least squares) and how the
sub-discriminators are combined stays here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from audioae.errors import ConfigError
from audioae.losses.adversarial import GAN_LOSSES, feature_matching

# One (logits, feature maps) pair per sub-discriminator.
DiscOutput = list[tuple[Tensor, list[Tensor]]]


class Discriminator(nn.Module):
    """Base: subclasses implement `forward(x) -> list[tuple[Tensor, list[Tensor]]]`, one
    (logits, feature_maps) per sub-discriminator, x: (B, C, T).

    Subclasses must treat batch items independently: `disc_loss` runs fake and real as one
    batch. Both losses are averaged over sub-discriminators.

    loss: "hinge" or "lsgan" (least squares); see `audioae.losses.adversarial`.
    """

    names = ("adv/gen", "adv/feat")  # generator-side loss names

    def __init__(self, loss: str = "hinge"):
        super().__init__()
        if loss not in GAN_LOSSES:
            raise ConfigError(
                f"discriminator.loss={loss!r} is unknown; choose one of {sorted(GAN_LOSSES)}"
            )
        self.loss = loss
        self._disc_fn, self._gen_fn = GAN_LOSSES[loss]

    def forward(self, x: Tensor) -> DiscOutput:
        raise NotImplementedError

    def disc_loss(self, fake: Tensor, real: Tensor) -> Tensor:
        """Discriminator objective; the caller passes fake.detach(). Averaged over
        sub-discriminators. fake, real: (B, C, T)."""
        n = fake.shape[0]
        # One pass over [fake; real]: fewer, larger kernels than two passes, same maths.
        outputs = self(torch.cat([fake, real]))
        # Sub-discriminators may fold channels into the batch: split each logit map in half.
        terms = [self._disc_fn(*_halves(logits, n)) for logits, _ in outputs]
        return torch.stack(terms).mean()

    def gen_loss(self, fake: Tensor, real: Tensor) -> dict[str, Tensor]:
        """{"adv/gen": adversarial term, "adv/feat": feature matching}, each averaged over
        sub-discriminators. fake, real: (B, C, T).

        Only the generator is being updated: real features are computed under torch.no_grad,
        and the discriminator's parameters are frozen for the fake pass, so the backward pass
        computes no weight gradients for them (gradients still flow through them to `fake`).
        """
        with torch.no_grad():
            real_out = self(real)
        with self._frozen():
            fake_out = self(fake)
        adv = torch.stack([self._gen_fn(logits) for logits, _ in fake_out]).mean()
        feat = torch.stack(
            [feature_matching(f, r) for (_, f), (_, r) in zip(fake_out, real_out, strict=True)]
        ).mean()
        return {"adv/gen": adv, "adv/feat": feat}

    @contextmanager
    def _frozen(self) -> Iterator[None]:
        # Autograd records requires_grad when an op runs, so restoring it afterwards leaves
        # the graph built inside without parameter leaves (see maybe_checkpoint for recompute).
        with _requires_grad(list(self.parameters()), False):
            yield


@contextmanager
def _requires_grad(params: list[nn.Parameter], flag: bool) -> Iterator[None]:
    """Set requires_grad on `params` inside the block, restoring each one's own value after."""
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(flag)
    try:
        yield
    finally:
        for p, was in zip(params, before, strict=True):
            p.requires_grad_(was)


def _halves(logits: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Split a logit map of the batch [fake; real] (n items each, possibly n*k rows)."""
    rows = logits.shape[0] // 2
    if rows * 2 != logits.shape[0] or rows % n:
        raise RuntimeError(f"logits batch {logits.shape[0]} is not 2 x a multiple of {n}")
    return logits[:rows], logits[rows:]


def maybe_checkpoint(module: nn.Module, x: Tensor, enabled: bool):
    """module(x), recomputed in the backward pass when `enabled` and gradients are being
    recorded: activation memory for compute.

    The recomputation sees the parameters frozen that were frozen in the forward pass
    (`Discriminator.gen_loss`), or it would save different tensors and fail.
    """
    if not (enabled and torch.is_grad_enabled()):
        return module(x)
    frozen = [p for p in module.parameters() if not p.requires_grad]
    return checkpoint(
        module,
        x,
        use_reentrant=False,
        context_fn=lambda: (nullcontext(), _requires_grad(frozen, False)),
    )


def channels_last_convs(module: nn.Module) -> None:
    """Run every Conv2d of `module` on channels-last (NHWC) inputs: the same values (to float
    rounding), computed faster by oneDNN's CPU kernels for the STFT and period discriminators
    (about 1.3x for an encodec discriminator with stride (1, 1), see docs/benchmarks.md).
    Later layers keep the layout, so converting once per network costs one copy."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_pre_hook(_to_channels_last)


def _to_channels_last(module: nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
