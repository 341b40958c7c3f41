"""Assembly: the networks, losses, optimizers, schedulers, GAN schedule and EMA of a config.

`build_training(cfg, acc)` builds everything a training step needs (`Training`), failing on the
config before anything is placed on a device; train/step.py is the step, train/loop.py the run.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast
from omegaconf import DictConfig
from torch import Tensor, nn

from audioae.autoencoder import AudioAutoencoder
from audioae.build import FREEZABLE, build, build_autoencoder
from audioae.errors import ConfigError
from audioae.losses.weighting import check_weights, flatten
from audioae.train.ema import EMA
from audioae.train.init_from import init_weights
from audioae.train.schedule import GANSchedule
from audioae.train.schedulers import InverseLR
from audioae.train.step import Net, StepResult, train_step

log = logging.getLogger(__name__)


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


def make_net(module: nn.Module, cfg: DictConfig, key: str) -> Net:
    opt = build(cfg.optimizer, f"{key}.optimizer")(p for p in module.parameters())
    sched = build(cfg.scheduler, f"{key}.scheduler")(opt) if cfg.get("scheduler") else None
    return Net(module, opt, sched, cfg.get("clip_grad_norm", 0.0))


def settings(net: Net) -> list[dict]:
    """The hyperparameters of each of `net`'s optimizer groups, as built from the config."""
    return [{k: v for k, v in group.items() if k != "params"} for group in net.opt.param_groups]


def resume_settings(
    net: Net, key: str, built: list[dict], saved: dict | None, changes: dict, cfg: DictConfig
) -> None:
    """On resume, after the checkpoint's optimizer state (Accelerate's load_state restores its
    param groups): the settings under `key` (optim.generator) that `changes`
    (runs.config_changes) says the config changed are the config's again: the optimizer's
    (lr, betas, weight decay, ...; `built`: `settings` before loading) and the scheduler's
    (`cfg`: optim.generator), which keeps its step count (`saved`: its state, None when the
    checkpoint had no scheduler). Settings not changed keep the checkpoint's state as is, so
    that a resume equals an uninterrupted run."""
    changed = [k.removeprefix(f"{key}.") for k in changes if k.startswith(f"{key}.")]
    hyper = {k.split(".")[1] for k in changed if k.startswith("optimizer.")}
    hyper -= {"_target_", "_partial_"}
    rescheduled = any(k.split(".")[0] == "scheduler" for k in changed)
    groups, sched = net.opt.param_groups, net.sched
    for group, fresh in zip(groups, built):
        group.update({k: fresh[k] for k in hyper - {"lr"} if k in fresh})
    if sched is None or saved is None:  # a constant lr, or a scheduler new here: from its start
        if "lr" in hyper or rescheduled:
            for group, fresh in zip(groups, built):
                group.update({k: fresh[k] for k in ("lr", "initial_lr") if k in fresh})
        return
    if not rescheduled:
        sched.load_state_dict(saved)  # its own settings; the base lrs are set below
        if "lr" not in hyper:
            return
    sched.last_epoch, sched._step_count = saved["last_epoch"], saved["_step_count"]
    base = [fresh["initial_lr"] for fresh in built]
    lrs = lrs_at(build(cfg.scheduler, f"{key}.scheduler"), base, sched.last_epoch)
    sched.base_lrs, sched._last_lr = base, lrs
    for group, initial, lr in zip(groups, base, lrs):
        group.update(initial_lr=initial, lr=lr)


def lrs_at(scheduler, base_lrs: list[float], steps: int) -> list[float]:
    """The learning rates that `scheduler(optimizer)` sets after `steps` steps from `base_lrs`:
    its closed form where it has one, else replayed on a stand-in optimizer (exact for any
    scheduler, chained ones too, at about 30 us a step)."""
    opt = torch.optim.SGD(
        [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in base_lrs]
    )
    sched = scheduler(opt)
    if hasattr(sched, "_get_closed_form_lr") or isinstance(sched, CLOSED_FORM):
        sched.last_epoch = steps
        with warnings.catch_warnings():  # torch warns about get_lr() outside step()
            warnings.simplefilter("ignore")
            closed = getattr(sched, "_get_closed_form_lr", sched.get_lr)
            return [float(lr) for lr in closed()]
    opt.step()  # no gradients, nothing moves: only so that the scheduler does not warn
    for _ in range(steps):
        sched.step()
    return [group["lr"] for group in opt.param_groups]


# schedulers whose get_lr() depends on last_epoch and base_lrs only, not on the current lr
CLOSED_FORM = (InverseLR, torch.optim.lr_scheduler.LambdaLR)


def compile_forward(*modules: nn.Module | None) -> None:
    """torch.compile each module's forward in place (`nn.Module.compile`): the module stays
    itself, so state-dict keys, optimizers, EMA, freezing and resume are unchanged (no
    `_orig_mod.` wrapper). The first steps compile (and recompile once when the encoder
    freezes, or on a new kind of step), then the compiled graphs run.

    The encodec discriminator's scales share one forward with different STFT sizes, and
    torchaudio's Spectrogram breaks the graph: every scale and kind of step is a recompile of
    the same frame, 10 or more where dynamo's default limit is 8 (after which that frame runs
    eager, with a warning). The limit is raised to 64 for the process."""
    import torch._dynamo

    name = (
        "recompile_limit"
        if hasattr(torch._dynamo.config, "recompile_limit")
        else "cache_size_limit"
    )
    setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), 64))
    for module in modules:
        if module is not None:
            module.compile()


@dataclass
class Training:
    """What a training step needs, built from the config by `build_training`."""

    gen: Net
    dis: Net | None
    losses: Losses
    weights: dict[str, float]
    schedule: GANSchedule
    ema: EMA | None

    def step(self, step: int, reals: list[Tensor], acc: Accelerator) -> StepResult:
        """One optimisation step over the micro-batches `reals` (train/step.py)."""
        return train_step(step, reals, self, acc)


def build_training(
    cfg: DictConfig, acc: Accelerator, model: AudioAutoencoder | None = None, fresh: bool = True
) -> Training:
    """The autoencoder (or `model`), losses, discriminator, optimizers, schedulers, schedule and
    EMA of `cfg`, on Accelerate's device. Config errors are raised before anything is placed.

    A `fresh` run (one that resumes no checkpoint) starts from `cfg.init_from`'s weights when it
    is set (train/init_from.py), and its EMA from a copy of them."""
    schedule: GANSchedule = build(cfg.trainer.schedule, "trainer.schedule")
    model = build_autoencoder(cfg) if model is None else model
    if not any(p.requires_grad for p in model.parameters()):
        frozen = ", ".join(cfg.get("freeze") or [])
        raise ConfigError(
            f"freeze=[{frozen}] leaves no parameter to train: freeze fewer of "
            f"{', '.join(FREEZABLE)} (a bottleneck such as the VAE has no parameters of its own)"
        )
    terms = {k: v for k, v in cfg.loss.terms.items() if v is not None}  # null: no such term
    losses = Losses({k: build(v, f"loss.terms.{k}") for k, v in terms.items()})
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
    if cfg.get("init_discriminator") and not cfg.get("init_from"):
        raise ConfigError("init_discriminator=true needs init_from=PATH (a training checkpoint)")
    if cfg.get("init_from"):
        if fresh:
            init_weights(cfg, model, disc)
        else:
            log.info("init_from=%s not read: the run resumes its checkpoint", cfg.init_from)
    t = cfg.trainer
    ema = EMA(copy.deepcopy(model), **t.ema) if t.use_ema else None
    if t.get("compile"):  # after the EMA's copy, which stays eager (demos, export)
        compile_forward(model, disc)
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


def init_from_data(training: Training, audio: Tensor, acc: Accelerator, level: float) -> None:
    """`trainer.data_init`: the autoencoder's data-dependent initialisation
    (AudioAutoencoder.data_init, the decoder's output at `level` times the audio's std) on the
    main process's share of the first step's batch, at the start of a fresh run; every other
    process then takes its weights, and the EMA restarts from them."""
    model = acc.unwrap_model(training.gen.module)
    if acc.is_main_process:
        model.data_init(audio.to(acc.device), level)
    if acc.num_processes > 1:
        for tensor in model.state_dict().values():
            tensor.copy_(broadcast(tensor.contiguous(), from_process=0))
    if training.ema is not None:
        training.ema.model.load_state_dict(model.state_dict())
    log.info("data-dependent initialisation on a batch of %d crops", len(audio))
