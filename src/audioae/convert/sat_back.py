"""audioae train configs back to stable-audio-tools model configs (`audioae-convert --to-json`).

The inverse of sat.py over the same tables (sat_schema.py). Every key stable-audio-tools reads is
written, its defaults included, so the JSON states the model and its training in full; widths
audioae derives (encoder latent_dim, in/out channels) are written as stable-audio-tools needs
them. A setting stable-audio-tools cannot express (e.g. `trainer.schedule.joint`, gradient
clipping, an unweighted-first encodec discriminator) is left out with one SATConversionWarning
each; a component it lacks altogether (a network or optimizer it cannot build) is a
ConfigError.
"""

from __future__ import annotations

import math
import warnings
from functools import cache
from typing import Any

from omegaconf import DictConfig, OmegaConf

from audioae.build import build, model_widths
from audioae.config import config_dir
from audioae.convert import sat_schema as S
from audioae.convert.overrides import lookup, same, signature_default
from audioae.convert.sat_read import SATConversionWarning
from audioae.errors import ConfigError
from audioae.losses.weighting import flatten

# audioae keys that stable-audio-tools states elsewhere or injects (not lost on the way).
IMPLIED = {
    "bottleneck": {"latent_dim", "loss_weights"},
    "loss.terms.spectral": {"channels", "sample_rate", "sc_norm"},  # sc_norm: form=auraloss only
    "discriminator": {"in_channels", "channels", "sample_rate"},
    "pretransform": {"enable_grad"},
}
_KNOWN_WEIGHTS = {"spec/mrstft", "time/l1", "time/l2", "adv/gen", "adv/feat"}


def config_to_sat(cfg: DictConfig) -> dict:
    """The stable-audio-tools model config of a composed or resolved audioae train config."""
    c = OmegaConf.to_container(cfg, resolve=True)
    pre = build(cfg.pretransform, "pretransform") if c.get("pretransform") else None
    derived = model_widths(cfg, pre)
    freeze = set(c.get("freeze") or [])
    model: dict[str, Any] = {}
    specs = {}
    for group, table in (
        ("encoder", S.ENCODERS),
        ("decoder", S.DECODERS),
        ("bottleneck", S.BOTTLENECKS),
    ):
        kind, spec = _find(table, group, c[group])
        specs[group] = spec
        model[group] = {
            "type": kind,
            "config": _component(spec, c[group], derived),
            "requires_grad": group not in freeze,
        }
    model["decoder"]["soft_clip"] = bool(c.get("soft_clip", False))
    enc = specs["encoder"]
    model["latent_dim"] = c["latent_dim"]
    ratio = math.prod(model["encoder"]["config"][enc.ratio])
    model["downsampling_ratio"] = ratio * (pre.downsampling_ratio if pre else 1)
    model["io_channels"] = c["io_channels"]
    model["in_channels"] = c["in_channels"]
    model["out_channels"] = c["out_channels"]
    if pre is not None:
        kind, spec = _find(S.PRETRANSFORMS, "pretransform", c["pretransform"])
        model["pretransform"] = {
            "type": kind,
            "config": _component(spec, c["pretransform"], derived),
            "enable_grad": bool(c["pretransform"].get("enable_grad", False)),
        }
    # audioae trains on max(in, out) channels (AudioAutoencoder.inputs_and_targets);
    # stable-audio-tools loads audio_channels and feeds the encoder their mean if force_input_mono
    data_channels = max(c["in_channels"], c["out_channels"])
    if data_channels > 2:
        _lost("in_channels", "stable-audio-tools loads mono or stereo audio only")
    if c["out_channels"] < c["in_channels"]:
        _lost(
            "out_channels",
            f"{c['out_channels']} with in_channels={c['in_channels']}: stable-audio-tools "
            "trains against the audio as loaded, not the channel mean audioae's target is",
        )
    training = _training(c, specs["bottleneck"])
    training["force_input_mono"] = c["in_channels"] == 1 < data_channels
    return {
        "model_type": "autoencoder",
        "sample_size": c["sample_size"],
        "sample_rate": c["sample_rate"],
        "audio_channels": data_channels,
        "model": model,
        "training": training,
    }


def _training(c: dict, bspec: S.Component) -> dict:
    trainer, schedule = c["trainer"], c["trainer"]["schedule"]
    for path, value in S.FIXED_TRAINING.items():
        if path.startswith("trainer.ema.") and not trainer.get("use_ema"):
            continue  # the average's settings matter only when there is one
        have = lookup(c, path)
        if not same(have, value):
            _lost(path, f"{have} has no stable-audio-tools equivalent (it uses {value})")
    augment = c.get("augment") or {}  # none in configs older than the group: off
    for key, value in S.AUGMENT.items():
        have = augment.get(key, 0.0 if key.endswith("_p") else None)
        if not same(have, value):
            _lost(
                f"augment.{key}",
                f"{have}: stable-audio-tools always flips the polarity with p 0.5 and silences "
                "a crop with p 0.001 (augment=sat), and applies nothing else",
            )
    # Other terms (audioae's mel) change the objective only through their weights: a weighted
    # one is reported here, an unweighted one only logs.
    weights = flatten(c["loss"]["weights"])
    for name in sorted(set(weights) - _KNOWN_WEIGHTS):
        if weights[name] != 0:  # a zero weight optimises nothing: nothing is lost
            _lost(f"loss.weights.{name.replace('/', '.')}", "no stable-audio-tools equivalent")
    spectral = c["loss"]["terms"]["spectral"]
    if not str(spectral.get("_target_", "")).endswith("MultiResolutionSTFT"):
        raise ConfigError(
            "loss.terms.spectral: only audioae.losses.spectral.MultiResolutionSTFT "
            "has a stable-audio-tools equivalent"
        )
    losses: dict[str, Any] = {
        "spectral": {
            "type": "mrstft",
            "config": _component(S.SPECTRAL, spectral, {}),
            "weights": {"mrstft": weights.get("spec/mrstft", 0.0)},
        },
        "time": {
            "type": "l1",
            "weights": {"l1": weights.get("time/l1", 0.0), "l2": weights.get("time/l2", 0.0)},
        },
    }
    bweights = flatten(c["bottleneck"].get("loss_weights") or {})
    for name, value in bspec.fixed_weights.items():
        if not same(bweights.get(name), value):
            _lost(f"bottleneck.loss_weights.{name}", f"stable-audio-tools always uses {value}")
    if bspec.weights:
        losses["bottleneck"] = {
            "type": "kl" if "kl" in bspec.weights else "mmd",
            "weights": {name: bweights.get(name, d) for name, d in bspec.weights.items()},
        }
    if c["loss"]["adversarial"]:
        kind, dspec = _find(S.DISCRIMINATORS, "discriminator", c["discriminator"])
        losses["discriminator"] = {
            "type": kind,
            "config": _component(dspec, c["discriminator"], {"out_channels": c["out_channels"]}),
            "weights": {
                "adversarial": weights.get("adv/gen", 0.0),
                "feature_matching": weights.get("adv/feat", 0.0),
            },
        }
    optim = {}
    for sat_name, ours in (("autoencoder", "generator"), ("discriminator", "discriminator")):
        node = c["optim"][ours]
        optim[sat_name] = {"optimizer": _torch_object(node["optimizer"], f"optim.{ours}")}
        if node.get("scheduler"):
            optim[sat_name]["scheduler"] = _torch_object(node["scheduler"], f"optim.{ours}")
    if c["loss"]["adversarial"] and (
        ("scheduler" in optim["autoencoder"]) != ("scheduler" in optim["discriminator"])
    ):
        _lost("optim", "stable-audio-tools creates schedulers only when both networks have one")
    return {
        "learning_rate": optim["autoencoder"]["optimizer"]["config"].get("lr"),
        "warmup_steps": schedule["warmup_steps"],
        "encoder_freeze_on_warmup": schedule["encoder_freeze_on_warmup"],
        "use_ema": trainer["use_ema"],
        "optimizer_configs": optim,
        "loss_configs": losses,
        "demo": {"demo_every": trainer["demo_every"]},
    }


def _component(spec: S.Component, node: dict, derived: dict) -> dict:
    config = {}
    for name, key in spec.keys.items():
        if key.injected or key.noop:
            continue
        if key.derived:
            config[name] = derived[key.derived]
            continue
        value = node[key.to] if key.to in node else signature_default(node, key.to)
        if name == "activation_params" and value is None:  # the encodec discriminator's default
            value = dict(key.default) if node.get("activation") == "LeakyReLU" else {}
        if key.values is not None:
            inverse = {v: sat for sat, v in key.values.items()}
            if value not in inverse:
                raise ConfigError(
                    f"{spec.group}.{key.to}={value}: stable-audio-tools supports "
                    f"{', '.join(map(str, inverse))}"
                )
            value = inverse[value]
        config[name] = list(reversed(value)) if key.reverse else value
    for name, value in spec.fixed.items():
        have = node[name] if name in node else signature_default(node, name)
        if not same(have, value):
            _lost(
                f"{spec.group}.{name}",
                f"{have} has no stable-audio-tools equivalent (it behaves as {value})",
            )
    known = {key.to for key in spec.keys.values() if key.to} | set(spec.fixed)
    known |= {n for n, key in spec.keys.items() if key.injected or key.derived}
    known |= {"_target_", "_partial_"} | S.PERFORMANCE_ONLY | IMPLIED.get(spec.group, set())
    for name in sorted(set(node) - known):
        _lost(f"{spec.group}.{name}", "no stable-audio-tools equivalent")
    return config


def _torch_object(node: dict, path: str) -> dict:
    target = node["_target_"]
    for prefix in ("torch.optim.lr_scheduler.", "torch.optim."):
        if target.startswith(prefix) and "." not in target[len(prefix) :]:
            kind = target[len(prefix) :]
            break
    else:
        names = {v: k for k, v in S.SCHEDULER_TARGETS.items()}
        if target not in names:
            raise ConfigError(f"{path}: {target} has no stable-audio-tools equivalent")
        kind = names[target]
    return {"type": kind, "config": {k: v for k, v in node.items() if not k.startswith("_")}}


def _find(table: dict, group: str, node: dict) -> tuple[str, S.Component]:
    target = node.get("_target_")
    for kind, spec in table.items():
        if _target(spec.group, spec.choice) == target:
            return kind, spec
    raise ConfigError(f"{group}: {target} has no stable-audio-tools equivalent")


@cache
def _target(group: str, choice: str) -> str | None:
    return OmegaConf.load(config_dir() / group / f"{choice}.yaml").get("_target_")


def _lost(path: str, message: str) -> None:
    warnings.warn(SATConversionWarning(f"{path}: {message}; not written"), stacklevel=3)
