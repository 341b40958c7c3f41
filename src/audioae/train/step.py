"""The training step, top to bottom (as descript-audio-codec's `train_loop`).

The GAN schedule (train/schedule.py) says which networks step; for each micro-batch: encode and
decode; the discriminator's loss on the detached fakes, backward; the generator's losses (the
reconstruction terms, the bottleneck's, the adversarial ones), weighted sum, backward. Then
each network clips and steps (`Net.update`), and the EMA follows a finite generator step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
from accelerate import Accelerator
from torch import Tensor, nn

from audioae.autoencoder import AudioAutoencoder
from audioae.losses.weighting import weighted_sum
from audioae.train.ema import EMA
from audioae.train.schedule import GANSchedule


@dataclass
class Net:
    """One trained network with its optimizer, scheduler and clipping threshold."""

    module: nn.Module
    opt: torch.optim.Optimizer
    sched: object | None
    clip: float
    average_grads: bool = False  # all-reduce gradients here (networks not wrapped in DDP)

    def update(self, acc: Accelerator) -> float:
        """Clip, then step if the gradients are finite. Returns the gradient norm.

        Under fp16 the gradients arrive multiplied by Accelerate's loss scale: only this
        network's optimizer is unscaled here (Accelerate's clip_grad_norm_ would unscale every
        optimizer, so in a joint step the other network's gradients twice), and the scaler's
        own step skips an update with inf/NaN gradients. `train_step` calls scaler.update()
        once after every network has stepped, so both see the scale their losses were
        multiplied by."""
        params = [p for p in self.module.parameters() if p.grad is not None]
        if self.average_grads and acc.num_processes > 1:
            for p in params:
                p.grad = acc.reduce(p.grad, reduction="mean")
        opt = getattr(self.opt, "optimizer", self.opt)  # the torch optimizer inside Accelerate's
        if acc.scaler is not None and params:
            acc.scaler.unscale_(opt)
        norm = float(nn.utils.clip_grad_norm_(params, self.clip or math.inf)) if params else 0.0
        finite = math.isfinite(norm)
        if acc.scaler is not None and params:
            acc.scaler.step(opt)  # skips the update itself when a gradient is not finite
        elif finite:
            self.opt.step()
        if finite and self.sched is not None:
            self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return norm


class Parts(Protocol):
    """What a step uses (train/setup.py's `Training` has it)."""

    gen: Net
    dis: Net | None
    losses: nn.Module
    weights: dict[str, float]
    schedule: GANSchedule
    ema: EMA | None


@dataclass
class StepResult:
    """What a step did: the scalars to log, which networks stepped, and whether every loss and
    gradient was finite (if not, nothing was updated)."""

    logs: dict[str, float]
    generator_stepped: bool
    discriminator_stepped: bool
    finite: bool


def train_step(step: int, reals: list[Tensor], t: Parts, acc: Accelerator) -> StepResult:
    """One optimisation step over the micro-batches `reals` (each update sees all of them).

    A step with a non-finite loss or gradient is skipped whole: the optimizers do not step
    (Net.update), the buffers that the forward pass updated (RVQ's EMA codebooks and their
    counts, batch-norm statistics) are put back as they were, and the EMA is not updated."""
    gen, dis, losses, weights, schedule = t.gen, t.dis, t.losses, t.weights, t.schedule
    train_gen = dis is None or schedule.trains_gen(step)  # without an adversary: always G
    train_dis = dis is not None and schedule.trains_disc(step)
    adversarial = dis is not None and schedule.adversarial(step)
    frozen = schedule.encoder_frozen(step)
    model: AudioAutoencoder = acc.unwrap_model(gen.module)
    if frozen:  # frozen parameters get no gradient, so the optimizer leaves them alone
        model.encoder.requires_grad_(False)
        model.bottleneck.requires_grad_(False)
    buffers = [b for n in (gen, dis) if n is not None for b in n.module.buffers()]
    saved = [b.clone() for b in buffers]
    sums: dict[str, Tensor] = {}  # kept on the device: one transfer per step, at the end

    def add(name: str, value: Tensor) -> None:
        sums[name] = sums.get(name, 0.0) + value.detach().float() / len(reals)

    for real in reals:
        inputs, real = model.inputs_and_targets(real.to(acc.device))  # channels: autoencoder.py
        with acc.autocast(), torch.set_grad_enabled(train_gen):
            fake, result = gen.module(inputs, freeze_encoder=frozen)
        if train_dis:
            with acc.autocast():
                d_loss = dis.module.disc_loss(fake.detach(), real)
            acc.backward(d_loss / len(reals))
            add("loss/adv/disc", d_loss)
        if train_gen:
            # the spectral and time losses in float32 (logs of small magnitudes), outside autocast
            terms = {**losses(fake.float(), real.float()), **result.losses}
            if adversarial:
                with acc.autocast():
                    terms.update(dis.module.gen_loss(fake, real))
            loss = weighted_sum(terms, weights)
            acc.backward(loss / len(reals))
            for name, value in terms.items():
                add(f"loss/{name}", value)
            add("loss/total", loss)
            add("latent/std", result.latents.std())
            add("latent/mean", result.latents.mean())
            for name, value in result.extras.items():
                if value.dim() == 0:  # e.g. codebook usage and perplexity
                    add(f"bottleneck/{name}", value)
    logs = dict(zip(sums, torch.stack(list(sums.values())).tolist())) if sums else {}
    if train_dis:
        logs["grad_norm/discriminator"] = dis.update(acc)
    if train_gen:
        logs["grad_norm/generator"] = gen.update(acc)
    if acc.scaler is not None:  # fp16: lower the scale after an overflow, raise it now and then
        acc.scaler.update()
        logs["amp/scale"] = acc.scaler.get_scale()

    finite = all(math.isfinite(v) for v in logs.values())
    if not finite:
        with torch.no_grad():
            for buffer, before in zip(buffers, saved):
                buffer.copy_(before)
    elif train_gen and t.ema is not None:  # the average follows finite generator steps
        t.ema.update(model)
    return StepResult(
        logs, generator_stepped=train_gen, discriminator_stepped=train_dis, finite=finite
    )
