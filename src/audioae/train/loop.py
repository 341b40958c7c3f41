"""The training loop: a plain Accelerate loop, no trainer framework.

`train(cfg, run_dir)` builds everything from the composed config, then runs `max_steps`
optimisation steps; checkpoints and logs are plain function calls on the main process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from audioae.build import build, build_autoencoder
from audioae.losses.weighting import check_weights, weighted_sum
from audioae.train.checkpoint import find_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


class TrainState:
    """The loop's own counters, saved and restored with Accelerate's checkpoint."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


class StepBatches(Sampler[list[int]]):
    """Batches of draw numbers for one process, from a given step on, forever.

    Datasets map a draw number to an item deterministically, so the batch of every step is
    fixed by (seed, step, process): resuming at step s restarts here at s, and the processes
    of a distributed run see disjoint draws.
    """

    def __init__(self, batch_size: int, start_step: int = 0, rank: int = 0, world: int = 1):
        self.batch_size, self.step, self.rank, self.world = batch_size, start_step, rank, world

    def __iter__(self) -> Iterator[list[int]]:
        step = self.step
        while True:
            first = (step * self.world + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))
            step += 1


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


def make_loader(dataset: Dataset, cfg: DictConfig, start_step: int, acc: Accelerator):
    sampler = StepBatches(cfg.trainer.batch_size, start_step, acc.process_index, acc.num_processes)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=cfg.trainer.num_workers,
        pin_memory=acc.device.type == "cuda",
        persistent_workers=cfg.trainer.num_workers > 0,
        # its own generator: creating the iterator must not draw from the global RNG, or a
        # resumed run would diverge from an uninterrupted one
        generator=torch.Generator().manual_seed(cfg.trainer.seed),
    )


def train(cfg: DictConfig, run_dir: Path) -> Path:
    """Train the model of `cfg`, writing logs and checkpoints under `run_dir`.

    Returns the folder of the last checkpoint."""
    t = cfg.trainer
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    acc = Accelerator(mixed_precision=t.precision)
    set_seed(t.seed)

    model = build_autoencoder(cfg)
    losses = Losses({k: build(v, f"loss.terms.{k}") for k, v in cfg.loss.terms.items()})
    check_weights(cfg.loss.weights, losses.names, "loss.weights")
    weights = {**model.bottleneck.loss_weights, **cfg.loss.weights}
    dataset = build(cfg.data, "data")

    opt = build(cfg.optim.generator.optimizer, "optim.generator.optimizer")(model.parameters())
    sched_cfg = cfg.optim.generator.get("scheduler")
    sched = build(sched_cfg, "optim.generator.scheduler")(opt) if sched_cfg else None
    model, opt = acc.prepare(model, opt)
    if sched is not None:
        sched = acc.prepare(sched)
    losses.to(acc.device)
    state = TrainState()
    acc.register_for_checkpointing(state)

    if cfg.resume:
        ckpt = find_checkpoint(cfg.resume)
        acc.load_state(str(ckpt))
        log.info("resumed from %s at step %d", ckpt, state.step)

    run_dir = Path(run_dir)
    writer = None
    if acc.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        writer = SummaryWriter(str(run_dir / "tb"))
        n_params = sum(p.numel() for p in model.parameters())
        log.info("model: %.2fM parameters, run dir %s", n_params / 1e6, run_dir)

    batches = iter(make_loader(dataset, cfg, state.step, acc))
    bar = tqdm(total=t.max_steps, initial=state.step, disable=not acc.is_main_process)
    last = None
    model.train()
    while state.step < t.max_steps:
        real = next(batches).to(acc.device)
        with acc.autocast():
            recon, result = model(real)
            logs = {**losses(recon.float(), real), **result.losses}
            loss = weighted_sum(logs, weights)
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        opt.step()
        if sched is not None:
            sched.step()
        state.step += 1

        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if writer is not None and (state.step % t.log_every == 0 or state.step == 1):
            logs = {f"loss/{k}": v.item() for k, v in logs.items()}
            logs["loss/total"] = loss.item()
            logs["lr/generator"] = opt.param_groups[0]["lr"]
            logs["latent/std"] = result.latents.std().item()
            logs["latent/mean"] = result.latents.mean().item()
            # scalar extras of the bottleneck (e.g. codebook usage and perplexity)
            logs.update(
                {f"bottleneck/{k}": v.item() for k, v in result.extras.items() if v.dim() == 0}
            )
            for k, v in logs.items():
                writer.add_scalar(k, v, state.step)
        if state.step % t.checkpoint_every == 0 or state.step == t.max_steps:
            last = save_checkpoint(acc, run_dir, state.step, cfg)
    bar.close()
    if writer is not None:
        writer.close()
    if last is None:  # resumed at or past max_steps: nothing new to save
        last = find_checkpoint(run_dir) if (run_dir / "checkpoints").is_dir() else None
    return last
