"""The `training` section of a stable-audio-tools model config: losses, optimizers, schedule.

Reproduces the effective behaviour of stable-audio-tools' training wrapper (reference sections
1.3-1.5, 5): its default losses and AdamW when `loss_configs`/`optimizer_configs` are absent,
torch's weight decay 0.01 that its default AdamW silently uses, schedulers only when both
networks have one, EMA 0.9999 with power 3/4, G on even and D on odd steps.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from hydra.utils import get_object

from audioae.convert import sat_schema as S
from audioae.convert.overrides import same
from audioae.convert.sat_read import KINDS, Reader, read_component, read_type
from audioae.losses.weighting import unflatten

TRAINING_KEYS = (
    "learning_rate", "warmup_steps", "encoder_freeze_on_warmup", "use_ema", "latent_mask_ratio",
    "force_input_mono", "teacher_model", "teacher_model_ckpt", "loss_configs",
    "eval_loss_configs", "optimizer_configs", "demo",
)  # fmt: skip
OPTIMIZER_FILL = ("lr", "betas", "weight_decay")  # keys conf/optim/adamw.yaml sets
SCHEDULER_FILL = ("inv_gamma", "power", "warmup")  # keys conf/optim/adamw_inverse.yaml sets


def read_training(r: Reader, t: Any, choices: dict, wanted: dict) -> None:
    """`training` -> trainer.*, loss.*, discriminator.*, optim.* and the bottleneck's weights."""
    t = r.mapping(t, "training", TRAINING_KEYS)
    warmup = r.get(t, "warmup_steps", "training", "int", 0)
    freeze_on_warmup = r.get(t, "encoder_freeze_on_warmup", "training", "bool", False)
    if freeze_on_warmup and warmup == 0:
        # There this freezes the encoder and bottleneck from the first step; here a freeze
        # "on warmup" needs warmup_steps > 0, so state it as what it is.
        wanted["freeze"] = sorted({*wanted["freeze"], "encoder", "bottleneck"})
        freeze_on_warmup = False
        r.notes["training.encoder_freeze_on_warmup"] = (
            "with warmup_steps 0 it freezes encoder and bottleneck from the start: "
            "written as freeze=[encoder, bottleneck]"
        )
    wanted["trainer.use_ema"] = r.get(t, "use_ema", "training", "bool", False)
    wanted["trainer.schedule.warmup_steps"] = warmup
    wanted["trainer.schedule.encoder_freeze_on_warmup"] = freeze_on_warmup
    # force_input_mono is checked against the channels in sat.py (_data_channels)
    for name, default, kind in (
        ("latent_mask_ratio", 0.0, "number"),
        ("teacher_model", None, "mapping?"),
        ("teacher_model_ckpt", None, "str?"),
        ("eval_loss_configs", None, "mapping?"),
    ):
        if not same(r.get(t, name, "training", kind, default), default):
            r.unsupported(f"training.{name}", "not supported by audioae")
    demo = r.mapping(r.get(t, "demo", "training", "mapping", {}), "training.demo", ("demo_every",))
    wanted["trainer.demo_every"] = r.get(demo, "demo_every", "training.demo", "int", 2000)

    losses = r.get(t, "loss_configs", "training", "mapping?", None)
    if losses is None:
        losses = S.DEFAULT_LOSS_CONFIGS
    adversarial = _losses(r, losses, "training.loss_configs", choices, wanted)
    lr = r.get(t, "learning_rate", "training", "number?", None)
    _optimizers(r, t.get("optimizer_configs"), lr, adversarial, choices, wanted)
    wanted.update(S.FIXED_TRAINING)


def _losses(r: Reader, lc: dict, path: str, choices: dict, wanted: dict) -> bool:
    allowed = ("discriminator", "spectral", "time", "bottleneck", "mrmel", "hubert")
    lc = r.mapping(lc, path, allowed)
    sp = r.mapping(
        r.get(lc, "spectral", path, "mapping"),
        f"{path}.spectral",
        ("type", "config", "weights", "decay"),
    )
    weights = r.mapping(
        r.get(sp, "weights", f"{path}.spectral", "mapping"), f"{path}.spectral.weights", ("mrstft",)
    )
    wanted["loss.weights.spec.mrstft"] = r.get(
        weights, "mrstft", f"{path}.spectral.weights", "number"
    )
    _decay(r, sp, f"{path}.spectral", [wanted["loss.weights.spec.mrstft"]])
    # audioae's mel term (conf/loss/mrstft.yaml) has no stable-audio-tools counterpart here
    wanted["loss.terms.mel"], wanted["loss.weights.spec.mel"] = None, 0.0
    _ignored_type(r, sp, f"{path}.spectral")
    read_component(
        r,
        S.SPECTRAL,
        r.get(sp, "config", f"{path}.spectral", "mapping", {}),
        f"{path}.spectral.config",
        wanted,
        [],
    )

    tm = r.mapping(
        r.get(lc, "time", path, "mapping"), f"{path}.time", ("type", "config", "weights", "decay")
    )
    r.mapping(r.get(tm, "config", f"{path}.time", "mapping", {}), f"{path}.time.config", ())
    weights = r.mapping(
        r.get(tm, "weights", f"{path}.time", "mapping"), f"{path}.time.weights", ("l1", "l2")
    )
    for name in ("l1", "l2"):
        wanted[f"loss.weights.time.{name}"] = r.get(
            weights, name, f"{path}.time.weights", "number", 0.0
        )
    _decay(r, tm, f"{path}.time", [wanted["loss.weights.time.l1"], wanted["loss.weights.time.l2"]])
    _ignored_type(r, tm, f"{path}.time")

    spec = S.BOTTLENECKS[choices["bottleneck"]]
    given = {}
    if "bottleneck" in lc:
        bn = r.mapping(lc["bottleneck"], f"{path}.bottleneck", ("type", "weights"))
        _ignored_type(r, bn, f"{path}.bottleneck")
        given = r.mapping(
            r.get(bn, "weights", f"{path}.bottleneck", "mapping", {}),
            f"{path}.bottleneck.weights",
            ("kl", "mmd"),
        )
        for name in given:
            r.get(given, name, f"{path}.bottleneck.weights", "number")
            if name not in spec.weights:
                r.warn(
                    f"{path}.bottleneck.weights.{name}",
                    f"no effect: a {spec.choice} "
                    "bottleneck has no such loss (stable-audio-tools ignores it too)",
                )
    if spec.weights or spec.fixed_weights:
        weights = {name: given.get(name, default) for name, default in spec.weights.items()}
        wanted["bottleneck.loss_weights"] = unflatten({**weights, **spec.fixed_weights})

    for name in ("mrmel", "hubert"):
        if name in lc:
            node = r.get(lc, name, path, "mapping")
            weight = node.get("weights", {}).get(name, 0) if isinstance(node, dict) else 0
            if not KINDS["number"][0](weight) or weight > 0:
                r.unsupported(f"{path}.{name}", "not supported by audioae")
            else:
                r.notes[f"{path}.{name}"] = "weight 0: stable-audio-tools does not add it"

    if "discriminator" not in lc:
        choices["loss"] = "mrstft"
        wanted["loss.adversarial"] = False
        return False
    dpath = f"{path}.discriminator"
    disc = r.mapping(lc["discriminator"], dpath, ("type", "config", "weights"))
    dspec = read_type(r, disc, dpath, S.DISCRIMINATORS, S.UNSUPPORTED_TYPES["discriminator"])
    choices["loss"], choices["discriminator"] = "mrstft_gan", dspec.choice
    checks: list = []
    read_component(
        r, dspec, r.get(disc, "config", dpath, "mapping"), f"{dpath}.config", wanted, checks
    )
    for _, value, at, defaulted in checks:  # the oobleck discriminator's in_channels
        if value != wanted["out_channels"]:
            r.fail(
                at,
                f"{value}{' (its default)' if defaulted else ''} contradicts "
                f"{S.DERIVED['out_channels']}={wanted['out_channels']}",
            )
    weights = r.mapping(
        r.get(disc, "weights", dpath, "mapping"),
        f"{dpath}.weights",
        ("adversarial", "feature_matching"),
    )
    wanted["loss.adversarial"] = True
    wanted["loss.weights.adv.gen"] = r.get(weights, "adversarial", f"{dpath}.weights", "number")
    wanted["loss.weights.adv.feat"] = r.get(
        weights, "feature_matching", f"{dpath}.weights", "number"
    )
    return True


def _decay(r: Reader, node: dict, path: str, weights: list) -> None:
    decay = r.get(node, "decay", path, "number", 1.0)
    if decay != 1.0 and any(w > 0 for w in weights):
        r.unsupported(f"{path}.decay", "loss-weight decay is not supported by audioae (only 1.0)")
    elif "decay" in node:
        r.notes[f"{path}.decay"] = "1.0 or on unused terms: changes nothing"


def _ignored_type(r: Reader, node: dict, path: str) -> None:
    if "type" in node:
        r.get(node, "type", path, "str")
        r.notes[f"{path}.type"] = "ignored by stable-audio-tools"


def _optimizers(r: Reader, oc: Any, lr: Any, adversarial: bool, choices: dict, wanted: dict):
    path = "training.optimizer_configs"
    if oc is None:
        if lr is None:
            r.fail("training.learning_rate", f"missing required key (without {path})")
        default = {"type": "AdamW", "config": {"lr": lr, "betas": S.DEFAULT_BETAS}}
        oc = {"autoencoder": {"optimizer": default}, "discriminator": {"optimizer": default}}
    elif lr is not None:
        r.notes["training.learning_rate"] = f"no effect: {path} sets the learning rates"
    oc = r.mapping(oc, path, ("autoencoder", "discriminator"))
    scheds = {}
    for name, ours in (("autoencoder", "generator"), ("discriminator", "discriminator")):
        if name not in oc and (name == "autoencoder" or adversarial):
            r.fail(f"{path}.{name}", "missing required key")
        if name not in oc:
            continue
        at = f"{path}.{name}"
        entry = r.mapping(oc[name], at, ("optimizer", "scheduler"))
        wanted[f"optim.{ours}.optimizer"] = _torch_object(
            r, r.get(entry, "optimizer", at, "mapping"), f"{at}.optimizer", "optimizer"
        )
        scheds[ours] = None
        if "scheduler" in entry:
            scheds[ours] = _torch_object(r, entry["scheduler"], f"{at}.scheduler", "scheduler")
    if adversarial and (scheds.get("generator") is None) != (scheds.get("discriminator") is None):
        lone = "autoencoder" if scheds.get("generator") is not None else "discriminator"
        r.warn(
            f"{path}.{lone}.scheduler",
            "ignored, as stable-audio-tools does: it creates "
            "schedulers only when both the autoencoder and the discriminator have one",
        )
        scheds = dict.fromkeys(scheds)
    for ours, sched in scheds.items():
        wanted[f"optim.{ours}.scheduler"] = sched
    inverse = S.SCHEDULER_TARGETS["InverseLR"]
    both = [scheds.get(n) for n in ("generator", "discriminator")]
    inverse_both = all(s is not None and s["_target_"] == inverse for s in both)
    choices["optim"] = "adamw_inverse" if inverse_both else "adamw"


def _torch_object(r: Reader, node: Any, path: str, what: str) -> dict:
    """An optimizer or scheduler {type, config} as a `_partial_` node for Hydra."""
    node = r.mapping(node, path, ("type", "config"))
    kind = r.get(node, "type", path, "str")
    config = dict(r.get(node, "config", path, "mapping", {}))
    if what == "optimizer":
        target, fill, base = f"torch.optim.{kind}", OPTIMIZER_FILL, torch.optim.Optimizer
    else:
        target = S.SCHEDULER_TARGETS.get(kind, f"torch.optim.lr_scheduler.{kind}")
        fill, base = SCHEDULER_FILL, torch.optim.lr_scheduler.LRScheduler
    try:
        cls = get_object(target)  # as Hydra will resolve the _target_
    except Exception:  # no such name: reported below
        cls = None
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        where = "torch.optim" if what == "optimizer" else "torch.optim.lr_scheduler or InverseLR"
        r.fail(f"{path}.type", f"{kind!r} is not a {what} of {where}")
    params = inspect.signature(cls).parameters
    for key in list(config):
        if key not in params or key in ("params", "optimizer"):
            if key == "verbose" and config[key] is False:
                r.notes[f"{path}.config.verbose"] = "false: changes nothing"
                del config[key]
                continue
            r.fail(f"{path}.config.{key}", f"not an argument of {target}")
    for key in fill:  # state the class defaults that audioae's preset would otherwise replace
        if key not in config and key in params and params[key].default is not inspect._empty:
            default = params[key].default
            config[key] = list(default) if isinstance(default, tuple) else default
    return {"_target_": target, "_partial_": True, **config}
