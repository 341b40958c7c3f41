"""The training run: a plain Accelerate loop, no trainer framework.

`train(cfg, run_dir)` builds everything from the composed config (train/setup.py) and runs
`max_steps` optimisation steps (train/step.py). A step updates the generator (the
autoencoder), the discriminator, or both, as the GAN schedule says (train/schedule.py); each
update sees `grad_accum` micro-batches. Checkpoints (audioae/runs.py), demos, validation and
logs are plain function calls on the main process.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import broadcast_object_list, set_seed
from omegaconf import DictConfig
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from audioae import runs, schema
from audioae.build import build
from audioae.data.augment import augmented
from audioae.data.mix import realised_shares
from audioae.data.sampler import StepBatches
from audioae.distributed import setup_from_slurm
from audioae.errors import AudioAEError, CheckpointError
from audioae.memory import reuse_freed_memory
from audioae.train.collectives import check_replicas, stop_requested
from audioae.train.demo import demo_clips, write_demo
from audioae.train.scalars import Averages, Throughput
from audioae.train.setup import (
    Losses,
    Net,
    Training,
    build_training,
    init_from_data,
    resume_settings,
    settings,
)
from audioae.train.signals import StopRequest
from audioae.train.validate import held_out_data, validate, validation_batches

log = logging.getLogger(__name__)

__all__ = ["Losses", "Net", "Preempted", "Training", "TrainingDiverged", "build_training", "train"]


class TrainingDiverged(AudioAEError):
    """Too many consecutive steps with non-finite losses or gradients."""


class Preempted(AudioAEError):
    """The run stopped on a signal (preemption, time-out, Ctrl-C) after saving `checkpoint`:
    not finished, so audioae-train exits with 128 + `signum` (143 for SIGTERM), as a shell
    reports a process killed by that signal."""

    def __init__(self, checkpoint: Path, signum: int) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"{name} received: saved {checkpoint}; continue with resume=auto")
        self.checkpoint, self.signum = checkpoint, signum

    @property
    def status(self) -> int:
        return 128 + self.signum


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
        mixed_precision=precision(cfg), kwargs_handlers=[ddp], cpu=not torch.cuda.is_available()
    )
    if t.precision != "no" and not acc.native_amp:  # Accelerate runs fp16 on a CPU as fp32
        where = "a CPU" if acc.device.type == "cpu" else acc.device
        log.warning(
            "trainer.precision=%s is not supported on %s: training in fp32 (config.yaml says "
            "trainer.precision=no)",
            t.precision,
            where,
        )
        cfg.trainer.precision = "no"  # what ran, in config.yaml and the checkpoints
    run_dir = Path(broadcast_object_list([str(run_dir)])[0])  # the main process's run dir
    set_seed(t.seed)

    # Everything that can fail on the config fails here, before any data is read. init_from
    # (weights only) applies to a fresh run: a resumed one restores all its own state.
    resume = runs.resume_from(cfg.resume, run_dir)
    # compared before anything is written: another model shape is an error naming the keys
    changes = runs.config_changes(resume, cfg) if resume is not None else {}
    training = build_training(cfg, acc, fresh=resume is None)
    # One owner per run folder; the other processes learn the verdict (they would wait forever).
    refusal = None
    if acc.is_main_process:
        try:
            runs.claim_run_dir(run_dir, cfg.resume)
            try:  # never train steps that cannot be saved (a newer checkpoint holds their step)
                runs.clear_way(run_dir, resume)
            except AudioAEError:
                runs.release_run_dir(run_dir)
                raise
        except AudioAEError as e:
            refusal = str(e)
    refusal = broadcast_object_list([refusal])[0]
    if refusal is not None:
        raise CheckpointError(refusal)
    try:
        return _train(cfg, run_dir, acc, training, resume, changes)
    finally:
        if acc.is_main_process:
            runs.release_run_dir(run_dir)


def precision(cfg: DictConfig) -> str:
    """trainer.precision, or "no" (with a warning) for bf16 on a GPU without bf16, which
    Accelerate would refuse with a traceback."""
    asked = cfg.trainer.precision
    cuda = torch.cuda.is_available() and not os.environ.get("ACCELERATE_USE_CPU")
    if asked == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        log.warning("trainer.precision=bf16 is not supported on this GPU: training in fp32")
        cfg.trainer.precision = "no"
    return cfg.trainer.precision


def _train(
    cfg: DictConfig,
    run_dir: Path,
    acc: Accelerator,
    training: Training,
    resume: Path | None,
    changes: dict[str, tuple],
) -> Path | None:
    t = cfg.trainer
    gen, dis, losses, ema = training.gen, training.dis, training.losses, training.ema
    resumed_at = runs.checkpoint_step(resume) if resume is not None else None
    augment = build(cfg.augment, "augment") if cfg.get("augment") else None
    dataset = build(cfg.data, "data")
    # checked before the run's config is written: a val_path that holds training files
    held = held_out_data(cfg, dataset, run_dir if acc.is_main_process else None)
    val_batches = validation_batches(cfg, held) if t.val_every else []
    if acc.is_main_process and (resume is None or changes or not (run_dir / runs.CONFIG).exists()):
        written = runs.prepare_run_dir(run_dir, cfg, resumed_at)
        if changes:
            said = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in changes.items())
            log.warning(
                "resuming %s with other settings (%s), recorded in %s", resume, said, written
            )
    # training crops only are augmented (data/augment.py); a mixture's shares come from the
    # draw numbers (data/mix.py)
    source, dataset = dataset, augmented(dataset, augment)

    # saved beside Accelerate's state (see audioae/runs.py)
    disc = dis.module if dis is not None else None
    modules = {k: v for k, v in (("discriminator", disc), (runs.EMA_MODULE, ema)) if v is not None}
    nets = (("generator", gen), ("discriminator", dis))
    schedulers = {k: n.sched for k, n in nets if n is not None and n.sched is not None}
    state = TrainState()
    if resume is not None:
        built = {name: settings(net) for name, net in nets if net is not None}
        saved = runs.load_checkpoint(acc, resume, modules)
        state.load_state_dict(saved["loop"])
        for name, net in nets:
            if net is not None:  # the settings the config changed over the checkpoint's
                own = saved["schedulers"].get(name)
                resume_settings(net, f"optim.{name}", built[name], own, changes, cfg.optim[name])
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
    if resume is None and t.get("data_init") is not None:
        if cfg.get("init_from"):
            log.info("trainer.data_init skipped: the run starts from init_from's weights")
        else:  # step 0's batch, all its micro-batches (a resume sees the same weights)
            first = micro_batches(dataset, cfg, 0, acc)
            batch = torch.cat([next(first) for _ in range(t.grad_accum)])
            init_from_data(training, batch, acc, t.data_init)
    bar = tqdm(total=t.max_steps, initial=state.step, disable=not acc.is_main_process)
    last, good = None, runs.newest_checkpoint(run_dir)
    unwrap = acc.unwrap_model
    averages = Averages()  # each scalar's mean since the last log point (train/scalars.py)
    audio_per_step = t.batch_size * t.grad_accum * acc.num_processes * cfg.sample_size
    throughput = Throughput(audio_per_step / cfg.sample_rate)
    draws_per_step, logged = t.batch_size * t.grad_accum * acc.num_processes, state.step
    # On a CPU, freed activations stay mapped for the next step (audioae/memory.py): 5-9% faster.
    # the bar closes (ends its line) on an error too, so the error is a line of its own
    with StopRequest() as stop, reuse_freed_memory(acc.device), bar:
        while state.step < t.max_steps:
            step = state.step
            start = time.perf_counter()
            micro = [next(batches) for _ in range(t.grad_accum)]
            loaded = time.perf_counter()
            result = training.step(step, micro, acc)  # ends in a device sync (the logged values)
            throughput.add(time.perf_counter() - start, loaded - start)
            logs = result.logs
            averages.add(logs)
            state.skipped += not result.finite
            state.streak = 0 if result.finite else state.streak + 1
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
            if (t.log_every and state.step % t.log_every == 0) or state.step in (1, t.max_steps):
                means = {**averages.pop(), **throughput.pop(), "nonfinite/skipped": state.skipped}
                draws = (logged * draws_per_step, state.step * draws_per_step)
                means.update(realised_shares(source, *draws))
                logged = state.step
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
    if stop.signal is not None:
        raise Preempted(last, stop.signal)
    return last or runs.newest_checkpoint(run_dir)


def micro_batches(dataset, cfg: DictConfig, start: int, acc: Accelerator) -> Iterator[Tensor]:
    """Endless micro-batches from number `start` on: draw numbers for a map-style dataset
    (data/sampler.py), or, for an iterable one (data/shards.py), `dataset.resume(start)`'s own
    stream, batched in its workers. A DataLoader worker that dies is a warning, and a new loader
    starts at the micro-batch it did not deliver (up to MAX_LOADER_RESTARTS times)."""
    restarts = 0
    while True:
        try:
            for batch in _loader(dataset, cfg, start, acc):
                yield batch
                start += 1
        except RuntimeError as e:
            # torch: "DataLoader worker (pid(s) N) exited unexpectedly" (killed, out of memory)
            if "exited unexpectedly" not in str(e):
                raise
            said = str(e).strip().splitlines()[0]
            if restarts >= MAX_LOADER_RESTARTS:
                raise LoaderError(
                    f"{said}, {restarts + 1} times: stopping; the run can be resumed from its "
                    "last checkpoint (resume=auto)"
                ) from None
            restarts += 1
            log.warning("%s; restarting the data loader at micro-batch %d", said, start)
        except AudioAEError as e:  # raised in a worker: torch adds the worker's traceback
            last = str(e).strip().splitlines()[-1]
            name = f"{type(e).__module__}.{type(e).__qualname__}: "
            raise type(e)(last.removeprefix(name)) from None


MAX_LOADER_RESTARTS = 3


class LoaderError(AudioAEError):
    """The DataLoader's workers kept dying."""


def _loader(dataset, cfg: DictConfig, start: int, acc: Accelerator) -> DataLoader:
    t = cfg.trainer
    options = dict(
        num_workers=t.num_workers,
        pin_memory=acc.device.type == "cuda",
        persistent_workers=t.num_workers > 0,
        # its own generator: creating the iterator must not draw from the global RNG, or a
        # resumed run would diverge from an uninterrupted one
        generator=torch.Generator().manual_seed(t.seed),
    )
    if isinstance(dataset, IterableDataset):
        stream = dataset.resume(start) if hasattr(dataset, "resume") else dataset
        return DataLoader(stream, batch_size=t.batch_size, **options)
    sampler = StepBatches(t.batch_size, start, acc.process_index, acc.num_processes)
    return DataLoader(dataset, batch_sampler=sampler, **options)
