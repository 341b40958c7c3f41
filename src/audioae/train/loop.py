"""The training loop: a plain Accelerate loop, no trainer framework.

`train(cfg, run_dir)` builds everything from the composed config and runs `max_steps`
optimisation steps. A step updates the generator (the autoencoder), the discriminator, or
both, as the GAN schedule says (train/schedule.py); each update sees `grad_accum`
micro-batches. Checkpoints, demos and logs are plain function calls on the main process.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import broadcast_object_list, gather_object, set_seed
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from audioae import runs, schema
from audioae.autoencoder import AudioAutoencoder
from audioae.build import build, build_autoencoder
from audioae.data.sampler import StepBatches
from audioae.distributed import setup_from_slurm
from audioae.errors import AudioAEError, ConfigError
from audioae.losses.weighting import check_weights, flatten, weighted_sum
from audioae.memory import reuse_freed_memory
from audioae.train.demo import demo_clips, write_demo
from audioae.train.ema import EMA
from audioae.train.scalars import Averages, Throughput
from audioae.train.schedule import GANSchedule
from audioae.train.signals import StopRequest
from audioae.train.validate import held_out_data, validate, validation_batches

log = logging.getLogger(__name__)


class TrainingDiverged(AudioAEError):
    """Too many consecutive steps with non-finite losses or gradients."""


class TrainState:
    """The loop's own counters, saved and restored with Accelerate's checkpoint."""

    def __init__(self) -> None:
        self.step = 0
        self.skipped = 0  # non-finite steps skipped in total
        self.streak = 0  # consecutive non-finite steps

    def state_dict(self) -> dict:
        return {"step": self.step, "skipped": self.skipped, "streak": self.streak}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.skipped, self.streak = state["step"], state["skipped"], state["streak"]


class Losses(nn.Module):
    """The reconstruction terms of `loss.terms`, returning one flat dict of named losses."""

    def __init__(self, terms: dict[str, nn.Module]):
        super().__init__()
        self.terms = nn.ModuleDict(terms)

    @property
    def names(self) -> list[str]:
        return [name for term in self.terms.values() for name in term.names]

    def forward(self, recon: Tensor, real: Tensor) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for term in self.terms.values():
            out.update(term(recon, real))
        return out


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


def make_net(module: nn.Module, cfg: DictConfig, key: str) -> Net:
    opt = build(cfg.optimizer, f"{key}.optimizer")(p for p in module.parameters())
    sched = build(cfg.scheduler, f"{key}.scheduler")(opt) if cfg.get("scheduler") else None
    return Net(module, opt, sched, cfg.get("clip_grad_norm", 0.0))


@dataclass
class Training:
    """What a training step needs, built from the config by `build_training`."""

    gen: Net
    dis: Net | None
    losses: Losses
    weights: dict[str, float]
    schedule: GANSchedule
    ema: EMA | None

    def step(self, step: int, reals: list[Tensor], acc: Accelerator) -> dict[str, float]:
        """One optimisation step (`train_step`), then the EMA update after a finite generator
        step. Returns the scalars to log.

        A step with a non-finite loss or gradient is skipped whole: the optimizers do not step
        (Net.update), and the buffers that the forward pass updated (RVQ's EMA codebooks and
        their counts, batch-norm statistics) are put back as they were."""
        buffers = [b for n in (self.gen, self.dis) if n is not None for b in n.module.buffers()]
        saved = [b.clone() for b in buffers]
        logs = train_step(
            step, reals, self.schedule, self.gen, self.dis, self.losses, self.weights, acc
        )
        finite = all(math.isfinite(v) for v in logs.values())
        if not finite:
            with torch.no_grad():
                for buffer, before in zip(buffers, saved):
                    buffer.copy_(before)
        if finite and self.ema is not None and "grad_norm/generator" in logs:
            self.ema.update(acc.unwrap_model(self.gen.module))
        return logs


def build_training(
    cfg: DictConfig, acc: Accelerator, model: AudioAutoencoder | None = None
) -> Training:
    """The autoencoder (or `model`), losses, discriminator, optimizers, schedulers, schedule and
    EMA of `cfg`, on Accelerate's device. Config errors are raised before anything is placed."""
    schedule: GANSchedule = build(cfg.trainer.schedule, "trainer.schedule")
    model = build_autoencoder(cfg) if model is None else model
    losses = Losses({k: build(v, f"loss.terms.{k}") for k, v in cfg.loss.terms.items()})
    disc = build(cfg.discriminator, "discriminator") if cfg.loss.adversarial else None
    for key, term in [*losses.terms.items(), ("discriminator", disc)]:
        shortest = getattr(term, "min_length", 0)
        if cfg.sample_size < shortest:
            raise ConfigError(
                f"sample_size={cfg.sample_size} is shorter than {key} needs ({shortest} "
                "samples, from its FFT sizes): raise sample_size or use smaller FFTs"
            )
    weights = flatten(cfg.loss.weights)
    check_weights(weights, losses.names + list(disc.names if disc else ()), "loss.weights")
    weights.update(model.bottleneck.loss_weights)
    if schedule.encoder_freeze_on_warmup and schedule.warmup_steps == 0:
        warnings.warn(
            "trainer.schedule.encoder_freeze_on_warmup is set but warmup_steps is 0: "
            "the encoder is NOT frozen (set warmup_steps > 0 to freeze it after warmup)",
            stacklevel=2,
        )
    t = cfg.trainer
    ema = EMA(copy.deepcopy(model), **t.ema) if t.use_ema else None
    gen = make_net(model, cfg.optim.generator, "optim.generator")
    dis = make_net(disc, cfg.optim.discriminator, "optim.discriminator") if disc else None

    gen.module, gen.opt = acc.prepare(gen.module, gen.opt)
    if dis is not None:
        # The discriminator is used through disc_loss/gen_loss, not forward(), so DDP could not
        # see it: it stays unwrapped and its gradients are averaged in Net.update.
        dis.module.to(acc.device)
        dis.opt = acc.prepare(dis.opt)
        dis.average_grads = True
    losses.to(acc.device)
    if ema is not None:
        ema.to(acc.device)
    return Training(gen, dis, losses, weights, schedule, ema)


def train(cfg: DictConfig, run_dir: Path) -> Path | None:
    """Train the model of `cfg`, writing logs and checkpoints under `run_dir`.

    Returns the folder of the last checkpoint."""
    schema.check(cfg)
    setup_from_slurm()  # SLURM tasks started by submitit: one distributed job
    t = cfg.trainer
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    # Unused parameters are normal when the encoder freezes or a quantizer skips stages.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    # cpu=True without CUDA lets Accelerate run several CPU processes (gloo) under torchrun
    # or `accelerate launch --multi_gpu`; with one process it changes nothing.
    acc = Accelerator(
        mixed_precision=t.precision, kwargs_handlers=[ddp], cpu=not torch.cuda.is_available()
    )
    run_dir = Path(broadcast_object_list([str(run_dir)])[0])  # the main process's run dir
    set_seed(t.seed)

    # Everything that can fail on the config fails here, before any data is read.
    training = build_training(cfg, acc)
    gen, dis, losses, ema = training.gen, training.dis, training.losses, training.ema
    resume = runs.resume_from(cfg.resume, run_dir)
    if acc.is_main_process:
        runs.prepare_run_dir(run_dir, cfg)
    dataset = build(cfg.data, "data")
    held = held_out_data(cfg, dataset, run_dir if acc.is_main_process else None)
    val_batches = validation_batches(cfg, held) if t.val_every else []

    # saved beside Accelerate's state (see audioae/runs.py)
    disc = dis.module if dis is not None else None
    modules = {k: v for k, v in (("discriminator", disc), (runs.EMA_MODULE, ema)) if v is not None}
    nets = (("generator", gen), ("discriminator", dis))
    schedulers = {k: n.sched for k, n in nets if n is not None and n.sched is not None}
    state = TrainState()
    if resume is not None:
        saved = runs.load_checkpoint(acc, resume, modules)
        state.load_state_dict(saved["loop"])
        for name, sched in schedulers.items():
            sched.load_state_dict(saved["schedulers"][name])
        log.info("resumed from %s at step %d", resume, state.step)

    def checkpoint() -> Path:
        check_replicas(acc, [unwrap(gen.module), *modules.values()], state.step)
        saved = {
            "loop": state.state_dict(),
            "schedulers": {k: v.state_dict() for k, v in schedulers.items()},
        }
        return runs.save_checkpoint(acc, run_dir, state.step, cfg, modules, saved)

    writer = SummaryWriter(str(run_dir / runs.TENSORBOARD)) if acc.is_main_process else None
    if writer is not None:
        n_params = sum(p.numel() for p in gen.module.parameters())
        log.info("model: %.2fM parameters, run dir %s", n_params / 1e6, run_dir)
    clips = demo_clips(held, t.num_demos) if t.demo_every and acc.is_main_process else None
    batches = micro_batches(dataset, cfg, state.step * t.grad_accum, acc)
    bar = tqdm(total=t.max_steps, initial=state.step, disable=not acc.is_main_process)
    last, good = None, runs.newest_checkpoint(run_dir)
    unwrap = acc.unwrap_model
    averages = Averages()  # each scalar's mean since the last log point (train/scalars.py)
    audio_per_step = t.batch_size * t.grad_accum * acc.num_processes * cfg.sample_size
    throughput = Throughput(audio_per_step / cfg.sample_rate)
    # On a CPU, freed activations stay mapped for the next step (audioae/memory.py): 5-9% faster.
    with StopRequest() as stop, reuse_freed_memory(acc.device):
        while state.step < t.max_steps:
            step = state.step
            start = time.perf_counter()
            micro = [next(batches) for _ in range(t.grad_accum)]
            loaded = time.perf_counter()
            logs = training.step(step, micro, acc)  # ends in a device sync (the logged values)
            throughput.add(time.perf_counter() - start, loaded - start)
            averages.add(logs)
            finite = all(math.isfinite(v) for v in logs.values())
            state.skipped += not finite
            state.streak = 0 if finite else state.streak + 1
            if state.streak >= t.max_nonfinite:
                raise TrainingDiverged(
                    f"{state.streak} consecutive steps with non-finite loss or gradients at "
                    f"step {step}; last good checkpoint: {good or 'none'} "
                    "(lower the learning rates?)"
                )
            state.step += 1

            bar.update(1)
            if "loss/total" in logs:
                bar.set_postfix(loss=f"{logs['loss/total']:.4f}")
            if state.step % t.log_every == 0 or state.step in (1, t.max_steps):
                means = {**averages.pop(), **throughput.pop(), "nonfinite/skipped": state.skipped}
                for name, net in nets:
                    if net is not None:
                        means[f"lr/{name}"] = net.opt.param_groups[0]["lr"]
                if writer is not None:
                    for k, v in means.items():
                        writer.add_scalar(k, v, state.step)
            averaged = ema.model if ema else unwrap(gen.module)
            if val_batches and state.step % t.val_every == 0 and writer is not None:
                for k, v in validate(averaged, val_batches, losses).items():
                    writer.add_scalar(f"val/{k}", v, state.step)
            if clips is not None and state.step % t.demo_every == 0:
                write_demo(averaged, clips, state.step, run_dir, writer)
            # no checkpoints during a run of non-finite (skipped) steps: the last good one stays
            # the newest, for resume=auto
            due = state.step % t.checkpoint_every == 0 or state.step == t.max_steps
            saved_now = due and state.streak == 0
            if saved_now:
                last = good = checkpoint()
            if stop_requested(stop, acc):
                last = last if saved_now else checkpoint()
                log.warning("%s received: saved %s; exiting", stop.name or "stop", last)
                break
    bar.close()
    if writer is not None:
        writer.close()
    stop.forward()  # submitit's time-out signal: its requeue (rank 0 exits), now the state is saved
    return last or runs.newest_checkpoint(run_dir)


def check_replicas(acc: Accelerator, modules: list[nn.Module], step: int) -> None:
    """In a distributed run, fail loudly if the processes' weights (or buffers, such as EMA
    codebooks) have drifted apart, which data-parallel training must never let happen.

    Every parameter and buffer is compared byte for byte (a digest of each; sums would let
    different weights pass)."""
    if acc.num_processes == 1:
        return
    digests = tensor_digests(modules)
    gathered = gather_object([digests])  # one dict per process
    drifted = [name for name in digests if any(d.get(name) != digests[name] for d in gathered)]
    if drifted:
        raise AudioAEError(
            f"step {step}: weights differ across the {acc.num_processes} processes in "
            f"{len(drifted)} tensors ({', '.join(drifted[:3])}"
            f"{', ...' if len(drifted) > 3 else ''}); a module updates state per process"
        )
    log.info("step %d: weights identical across %d processes", step, acc.num_processes)


def tensor_digests(modules: list[nn.Module]) -> dict[str, str]:
    """A digest of the bytes of every parameter and buffer of `modules`, named `I.NAME` (I: the
    module's position in the list)."""
    digests = {}
    for i, module in enumerate(modules):
        named = (*module.named_parameters(), *module.named_buffers())
        for name, tensor in named:
            data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
            digest = hashlib.blake2b(data.numpy().tobytes(), digest_size=16)
            digests[f"{i}.{name}"] = f"{tensor.dtype}{tuple(tensor.shape)}:{digest.hexdigest()}"
    return digests


def stop_requested(stop: StopRequest, acc: Accelerator) -> bool:
    """Whether any process received SIGTERM, SIGINT or submitit's SIGUSR2 (all processes must
    agree, since saving a checkpoint is collective)."""
    flag = torch.tensor(float(stop.signal is not None), device=acc.device)
    if acc.num_processes > 1:
        flag = acc.reduce(flag, reduction="sum")
    return bool(flag.item())


def train_step(
    step: int,
    reals: list[Tensor],
    schedule: GANSchedule,
    gen: Net,
    dis: Net | None,
    losses: Losses,
    weights: dict[str, float],
    acc: Accelerator,
) -> dict[str, float]:
    """One optimisation step over the micro-batches `reals`; returns the scalars to log."""
    train_gen = dis is None or schedule.trains_gen(step)  # without an adversary: always G
    train_dis = dis is not None and schedule.trains_disc(step)
    adversarial = dis is not None and schedule.adversarial(step)
    frozen = schedule.encoder_frozen(step)
    model: AudioAutoencoder = acc.unwrap_model(gen.module)
    if frozen:  # frozen parameters get no gradient, so the optimizer leaves them alone
        model.encoder.requires_grad_(False)
        model.bottleneck.requires_grad_(False)
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
    return logs


def micro_batches(dataset, cfg: DictConfig, start: int, acc: Accelerator) -> Iterator[Tensor]:
    """Endless micro-batches from number `start` on (see data/sampler.py)."""
    sampler = StepBatches(cfg.trainer.batch_size, start, acc.process_index, acc.num_processes)
    workers = cfg.trainer.num_workers
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=acc.device.type == "cuda",
        persistent_workers=workers > 0,
        # its own generator: creating the iterator must not draw from the global RNG, or a
        # resumed run would diverge from an uninterrupted one
        generator=torch.Generator().manual_seed(cfg.trainer.seed),
    )
    return iter(loader)
