"""Weights in stable-audio-tools' layouts, in and out.

Our module tree uses the reference's names (`encoder.*`, `decoder.*`, `bottleneck.*`,
`pretransform.model.*`, weight-norm `weight_g`/`weight_v`), so its autoencoder state dict *is*
ours: only the wrapping differs.

- Unwrapped exports (`unwrap_model.py`): `model.safetensors`, or `model.ckpt` =
  {"state_dict": <autoencoder keys>}.
- Lightning training checkpoints: {"state_dict": {"autoencoder.*", "autoencoder_ema.ema_model.*",
  "discriminator.*", losses, ...}, optimizer states, ...}. We read the EMA copy when it is there
  (the reference's unwrap_model.py exports it too, and it is what the run was meant to produce),
  else `autoencoder.*`; `ema=False` picks the online weights.
- Latent diffusion (and other) models whose pretransform is an autoencoder (`model_type`
  diffusion_cond, diffusion_uncond, ...; e.g. Stable Audio Open): the autoencoder's config is
  `model.pretransform.config` of model_config.json and its weights are `pretransform.model.*`
  (`diffusion.pretransform.model.*` in a Lightning training checkpoint); the rest (`model.*`,
  `conditioner.*`, ...) is not read.
The model config comes from `model_config.json` through the converter (audioae.convert.sat).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from audioae.errors import CheckpointError

ONLINE, EMA = "autoencoder.", "autoencoder_ema.ema_model."
# where a diffusion model keeps its autoencoder: unwrapped, and in a Lightning training checkpoint
PRETRANSFORM = ("pretransform.model.", "diffusion.pretransform.model.")


def sat_model_config(path: str | Path) -> DictConfig:
    """Our config for a stable-audio-tools model_config.json: a strict conversion of the model
    (of the autoencoder pretransform of a diffusion model); `training` and `audio_channels` drive
    stable-audio-tools' training alone, so they are not read (a mono-in/stereo-out model says
    audio_channels: 2, in_channels: 1)."""
    from audioae.convert import SATConversionWarning, sat_config
    from audioae.convert.sat_read import load_json

    config = autoencoder_config(load_json(path), path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SATConversionWarning)
        if config is not None:  # a diffusion model's autoencoder
            cfg = sat_config(config, lenient=False, model_only=True)
        else:
            cfg = sat_config(str(path), lenient=False, model_only=True)
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))


def autoencoder_config(config: Mapping, source: str | Path = "model_config.json") -> dict | None:
    """The autoencoder model config inside a model config whose pretransform is an autoencoder
    (a latent diffusion model), None for an autoencoder's own config."""
    if config.get("model_type") in ("autoencoder", "diffusion_autoencoder"):
        return None
    model = config.get("model")
    pre = model.get("pretransform") if isinstance(model, Mapping) else None
    if not isinstance(pre, Mapping) or pre.get("type") != "autoencoder":
        raise CheckpointError(
            f"{source}: model_type {config.get('model_type')!r} has no autoencoder "
            "(model.pretransform with type 'autoencoder') to take"
        )
    if not isinstance(pre.get("config"), Mapping):
        raise CheckpointError(f"{source}: model.pretransform.config is missing")
    # sample_size: the diffusion model's, a multiple of the autoencoder's ratio
    top = {k: config[k] for k in ("sample_rate", "sample_size", "audio_channels") if k in config}
    return {"model_type": "autoencoder", **top, "model": dict(pre["config"])}


def autoencoder_state(
    state: Mapping[str, Tensor], ema: bool = True, source: str | Path = "checkpoint"
) -> dict[str, Tensor]:
    """The autoencoder's state dict out of any of the reference's checkpoint layouts."""
    if any(".pqmf." in k or k.startswith("pqmf.") for k in state):
        raise CheckpointError(
            f"{source}: holds stable-audio-tools' PQMF pretransform, whose filter bank and band "
            "layout differ from audioae's (pretransforms/pqmf.py); its weights would not mean "
            "the same here. Retrain with audioae, or use the wavelet pretransform"
        )
    if not any(k.startswith("encoder.") for k in state):
        for prefix in PRETRANSFORM:  # a diffusion model: its autoencoder pretransform
            if any(k.startswith(prefix + "encoder.") for k in state):
                return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    has_ema = any(k.startswith(EMA) for k in state)
    has_online = any(k.startswith(ONLINE) for k in state)
    if has_ema and (ema or not has_online):
        prefix = EMA
    elif has_online:
        prefix = ONLINE
    else:
        return dict(state)  # unwrapped: autoencoder keys already
    picked = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    if not picked:
        raise CheckpointError(f"{source}: no autoencoder weights under {prefix}*")
    return picked


def to_sat(cfg: DictConfig) -> dict:
    """model_config.json for our config (the converter's inverse direction)."""
    from audioae.convert import config_to_sat

    return config_to_sat(cfg)
