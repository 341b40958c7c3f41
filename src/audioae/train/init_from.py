"""Starting a run from trained weights: `init_from=PATH` (fine-tuning, not resuming).

PATH is anything audioae-encode accepts (audioae.inference.loading: a run folder, a checkpoint,
an export, a stable-audio-tools model or Lightning checkpoint), or a stable-audio-tools latent
diffusion model, whose autoencoder (`pretransform.model.*`) is taken. Only weights are read: the
run starts at step 0 with fresh optimizers and schedulers in a new run folder, and its EMA
(trainer.use_ema) starts as a copy of the loaded weights. The model is the one this config
builds; where PATH's own config says otherwise, a warning names the keys.

`resume=` is the other way in: it continues a run with all its state (optimizers, schedulers,
step, EMA), and it wins: a run that resumes a checkpoint does not read init_from. So
`init_from=X resume=auto` starts from X once and continues itself after a preemption.

Which weights: the source's EMA copy when it has one (`init_from_ema=true`, the default), since
those are what the run was meant to produce and what audioae-encode and audioae-export use: the
step-0 model is the one whose latents users already have. `init_from_ema=false` takes the online
weights (the ones the source's optimizer was training).

Strict by default: a missing, unexpected or mis-shaped key is one error listing them.
`init_from_strict=false` loads the keys that fit, leaves the others as initialised, and warns
with the counts and the first names. A frozen component (`freeze`) must load whole either way:
a frozen random network is never what was meant.

`init_discriminator=true` loads the discriminator too, from an audioae training checkpoint
(checkpoints/step_N/discriminator.safetensors; an export has none) or a stable-audio-tools
Lightning checkpoint (`discriminator.*`), with the same strictness.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from omegaconf import DictConfig
from torch import Tensor, nn

from audioae import runs
from audioae.autoencoder import AudioAutoencoder
from audioae.errors import AudioAEError, CheckpointError, ConfigError
from audioae.inference.loading import Source, locate, model_config, read_config, read_state
from audioae.inference.weights import Mismatch, compare, read_weights

log = logging.getLogger(__name__)

LISTED, SHOWN = 12, 5  # names listed per kind of mismatch: in the error, in the warning
SAT_DISCRIMINATOR = "discriminator."  # the Lightning wrapper's attribute


class InitFromError(CheckpointError):
    """init_from's weights do not fit the model (strict), or a part that must load did not."""


def init_weights(cfg: DictConfig, model: AudioAutoencoder, disc: nn.Module | None) -> None:
    """Load `cfg.init_from`'s weights into `model` (and `disc` with cfg.init_discriminator)."""
    path = cfg.init_from
    if cfg.get("init_discriminator") and disc is None:
        raise ConfigError(
            "init_discriminator=true but this run has no discriminator "
            "(its loss is not adversarial: use e.g. loss=mrstft_gan)"
        )
    try:
        source = locate(path)
    except CheckpointError as e:
        raise CheckpointError(f"init_from: {e}") from None
    warn_config_differences(cfg, path, source)
    ema, strict = cfg.get("init_from_ema", True), cfg.get("init_from_strict", True)
    state = read_state(source, ema=ema)
    what = f"init_from={path}"
    loaded = load_weights(model, state, what, strict, model.frozen)
    log.info("%s: loaded %d tensors (%s)", what, loaded, weights_kind(source, ema))
    if cfg.get("init_discriminator"):
        what = f"init_discriminator from {path}"
        loaded = load_weights(disc, discriminator_state(source, path), what, strict)
        log.info("%s: loaded %d tensors", what, loaded)


def load_weights(
    module: nn.Module,
    state: Mapping[str, Tensor],
    what: str,
    strict: bool,
    whole: Sequence[str] = (),
) -> int:
    """Load `state` into `module`; returns the number of tensors loaded.

    strict: any mismatch is an InitFromError listing the keys; else the fitting keys load and a
    warning lists the rest. `whole`: submodules (e.g. the frozen ones) that must load entirely
    even when not strict."""
    mismatch = compare(module, state)
    if mismatch and strict:
        raise InitFromError(
            f"{what}: the weights do not fit the model of this config ({mismatch.counts()} "
            f"keys): {summary(mismatch, LISTED)}; init_from_strict=false loads the keys that fit"
        )
    incomplete = [
        name
        for name in whole
        if any(k.startswith(f"{name}.") for k in mismatch.missing + mismatch.shapes)
    ]
    if incomplete:
        raise InitFromError(
            f"{what}: freeze={list(whole)} but the weights of {', '.join(incomplete)} do not "
            "all fit, so a frozen part would keep random weights: fix the config (the same "
            f"architecture as the source) or unfreeze {', '.join(incomplete)}"
        )
    if not mismatch.fitting:
        raise InitFromError(f"{what}: none of the weights fit the model of this config")
    if mismatch:
        log.warning(
            "%s: loaded %d of %d tensors; not loaded: %s keys (%s); the model's keys keep "
            "their initialisation",
            what,
            len(mismatch.fitting),
            len(module.state_dict()),
            mismatch.counts(),
            summary(mismatch, SHOWN, shapes=False),
        )
    module.load_state_dict(mismatch.fitting, strict=False)
    return len(mismatch.fitting)


def summary(mismatch: Mismatch, limit: int, shapes: bool = True) -> str:
    """ "missing: a, b, ... (N more); shape: c (8,) in the checkpoint, (16,) in the model; ...",
    the first `limit` names of each kind (and their shapes unless not `shapes`)."""
    kinds = (
        ("missing", mismatch.missing),
        ("unexpected", mismatch.unexpected),
        ("shape", mismatch.shapes if shapes else [s.split()[0] for s in mismatch.shapes]),
    )
    return "; ".join(
        f"{kind}: {', '.join(keys[:limit])}"
        + (f" ({len(keys) - limit} more)" if len(keys) > limit else "")
        for kind, keys in kinds
        if keys
    )


def weights_kind(source: Source, ema: bool) -> str:
    """Which weights of the source were read, for the log."""
    if source.kind != "audioae":
        return "stable-audio-tools weights" + (", the EMA copy if present" if ema else ", online")
    if source.ema is None:  # e.g. an export: the EMA copy when its run had one
        return source.weights.name
    averaged = ema and runs.ema_weights(read_weights(source.ema)) is not None
    return f"{source.ema.name if averaged else source.weights.name} of {source.weights.parent}"


def discriminator_state(source: Source, path: str) -> dict[str, Tensor]:
    """The discriminator's state dict from a training checkpoint (ours or stable-audio-tools')."""
    if source.kind == "audioae":
        file = source.weights.parent / runs.DISCRIMINATOR_FILE
        if not file.exists():
            raise InitFromError(
                f"init_discriminator: {path} has no discriminator weights ({file.name}): only "
                "a training checkpoint (a run folder or its checkpoints/step_N) has them, an "
                "export does not"
            )
        return read_weights(file)
    state = read_weights(source.weights)
    found = {
        k.removeprefix(SAT_DISCRIMINATOR): v
        for k, v in state.items()
        if k.startswith(SAT_DISCRIMINATOR)
    }
    if not found:
        raise InitFromError(
            f"init_discriminator: {source.weights} has no discriminator weights "
            f"({SAT_DISCRIMINATOR}*): only a stable-audio-tools training checkpoint has them"
        )
    return found


def warn_config_differences(cfg: DictConfig, path: str, source: Source) -> None:
    """Warn where the source's model config differs from this run's (the run's wins)."""
    try:
        theirs = runs.flat_config(model_config(read_config(path, source)))
    except AudioAEError:  # e.g. a SAT config the converter cannot read: weights only
        return
    ours = runs.flat_config(model_config(cfg))
    ignored = ("sample_size", "pretransform.path", "pretransform.config")  # crop; inlined
    differ = [
        k
        for k in sorted(theirs.keys() | ours.keys())
        if theirs.get(k) != ours.get(k) and not k.startswith(ignored) and "loss_weights" not in k
    ]
    if differ:
        said = ", ".join(f"{k} ({theirs.get(k)} -> {ours.get(k)})" for k in differ[:8])
        more = f" and {len(differ) - 8} more" if len(differ) > 8 else ""
        log.warning(
            "init_from=%s: this config's model differs from the source's at %s%s",
            path,
            said,
            more,
        )
