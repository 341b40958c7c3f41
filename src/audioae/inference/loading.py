"""`load_model(path)`: the autoencoder and its config from anything the tools accept.

PATH may be
- a run directory (`config.yaml`, `checkpoints/step_N/`): its newest complete checkpoint;
- a checkpoint folder or an exported model (`config.yaml` + `model.safetensors`);
- a stable-audio-tools model: a folder with `model_config.json` and `model.safetensors` or
  `model.ckpt` (also a training checkpoint), or such a weights file with `model_config.json`
  beside it;
- a diffusers AutoencoderOobleck folder (`config.json` + `diffusion_pytorch_model.safetensors`,
  audioae.inference.diffusers), or that weights file.
- a stable-audio-tools latent diffusion model (either form above, `model_type` diffusion_cond,
  ...): the autoencoder it was trained on (its pretransform; see audioae.inference.sat).
A folder with both `config.yaml` and `model_config.json` (`audioae-export --sat`) is read as ours.

EMA weights are used when the checkpoint has them (`ema.safetensors`, or the reference's
`autoencoder_ema.ema_model.*`), since they are the ones meant for inference; `ema=False` takes the
online weights. Loading is strict: a missing, unexpected or mis-shaped key is an error listing
them all.

`autoencoder_pretransform` is the config's way to put a trained model in front of another one
(conf/pretransform/autoencoder.yaml targets it): it loads the model and hands it to the
component (audioae.pretransforms.autoencoder), which loads nothing itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from audioae import runs
from audioae.autoencoder import AudioAutoencoder
from audioae.build import build_autoencoder
from audioae.errors import CheckpointError, ConfigError
from audioae.inference import diffusers
from audioae.inference.weights import check_finite, load_strict, read_weights
from audioae.pretransforms.autoencoder import AutoencoderPretransform

CONFIG, WEIGHTS, EMA = runs.CONFIG, runs.WEIGHTS, runs.EMA
SAT_CONFIG = "model_config.json"
SAT_WEIGHTS = ("model.safetensors", "model.ckpt")

# The keys of a train config that describe the model (what build_autoencoder reads).
MODEL_KEYS = (
    "sample_rate", "sample_size", "io_channels", "in_channels", "out_channels", "latent_dim",
    "downsampling_ratio", "soft_clip", "encoder", "decoder", "bottleneck", "pretransform",
)  # fmt: skip


@dataclass
class Source:
    """Where a model's config and weights are. kind: "audioae", "sat" or "diffusers"."""

    kind: str
    config: Path
    weights: Path
    ema: Path | None = None


def locate(path: str | Path) -> Source:
    """Find the config and weights files that PATH stands for."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    if path.is_file():
        if path.name in (CONFIG, SAT_CONFIG):
            return locate(path.parent)
        if path.name in (diffusers.CONFIG, diffusers.WEIGHTS) and diffusers.is_diffusers(
            path.parent
        ):
            return locate(path.parent)
        if path.suffix not in (".safetensors", ".ckpt", ".pt", ".pth"):
            raise CheckpointError(
                f"{path}: not a model file (expected .safetensors or .ckpt, or a folder)"
            )
        for name, kind in ((CONFIG, "audioae"), (SAT_CONFIG, "sat")):
            if (path.parent / name).exists():
                return Source(kind, path.parent / name, path)
        raise CheckpointError(f"{path}: no {CONFIG} or {SAT_CONFIG} beside it to build the model")
    if runs.is_run(path):  # before an export's files: a run folder reads as its newest step
        return locate(runs.find_checkpoint(path))
    if (path / CONFIG).exists() and (path / WEIGHTS).exists():
        ema = path / EMA
        return Source("audioae", path / CONFIG, path / WEIGHTS, ema if ema.exists() else None)
    if diffusers.is_diffusers(path):
        if not (path / diffusers.WEIGHTS).exists():
            raise CheckpointError(f"{path}: a diffusers folder without {diffusers.WEIGHTS}")
        return Source("diffusers", path / diffusers.CONFIG, path / diffusers.WEIGHTS)
    if (path / SAT_CONFIG).exists():
        for name in SAT_WEIGHTS:
            if (path / name).exists():
                return Source("sat", path / SAT_CONFIG, path / name)
        found = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.ckpt"))
        if len(found) == 1:
            return Source("sat", path / SAT_CONFIG, found[0])
        raise CheckpointError(
            f"{path}: {SAT_CONFIG} but no single weights file (model.safetensors or model.ckpt)"
        )
    raise CheckpointError(
        f"{path}: not a model: expected a run directory (checkpoints/), a checkpoint or export "
        f"({CONFIG} + {WEIGHTS}), a stable-audio-tools model ({SAT_CONFIG} + weights) or a "
        f"diffusers AutoencoderOobleck ({diffusers.CONFIG} + {diffusers.WEIGHTS})"
    )


def model_config(cfg: DictConfig) -> DictConfig:
    """The model part of a (train) config, resolved."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    return OmegaConf.create({k: resolved[k] for k in MODEL_KEYS if k in resolved})


def read_config(path: str | Path, source: Source | None = None) -> DictConfig:
    """The resolved config of the model at PATH, with autoencoder pretransforms inlined."""
    source = source or locate(path)
    if source.kind == "sat":
        from audioae.inference.sat import sat_model_config

        cfg = sat_model_config(source.config)
    elif source.kind == "diffusers":
        cfg = diffusers.read_config(source.config.parent)
    else:
        try:
            cfg = OmegaConf.load(source.config)
            cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        except Exception as e:
            raise CheckpointError(f"{source.config}: unreadable config ({e})") from None
    return inline_pretransform(cfg, source.config)


def inline_pretransform(cfg: DictConfig, origin: Path | str) -> DictConfig:
    """Replace an autoencoder pretransform's `path` by the inner model's config.

    A model trained on top of another names that model by path; its own checkpoint already holds
    the inner weights (`pretransform.model.*`), so only the inner architecture is needed, and with
    it inlined the config no longer depends on the inner run's folder (exports are
    self-contained)."""
    pre = cfg.get("pretransform")
    if not pre or pre.get("_target_") != LOADER or not pre.get("path"):
        return cfg
    try:
        inner = read_config(pre.path)
    except CheckpointError as e:
        raise CheckpointError(
            f"{origin}: its pretransform, the model at pretransform.path {pre.path}, cannot be "
            f"read ({e}); its weights are in this checkpoint, but its architecture is read from "
            "there: put that model back at that path (or set pretransform.path to a copy of it)"
        ) from None
    cfg = cfg.copy()
    cfg.pretransform.config = model_config(inner)
    cfg.pretransform.path = None
    return cfg


def read_state(source: Source, ema: bool = True) -> dict:
    """The autoencoder state dict of a located model (EMA weights when present and wanted);
    every command and init_from load weights through here, so a NaN or infinite weight is
    refused here, naming the tensor (weights.check_finite)."""
    if source.kind == "sat":
        from audioae.inference.sat import autoencoder_state

        state = autoencoder_state(read_weights(source.weights), ema=ema, source=source.weights)
    elif source.kind == "diffusers":
        state = diffusers.read_state(source.config.parent, source.weights)
    elif (
        ema
        and source.ema is not None
        and (averaged := runs.ema_weights(read_weights(source.ema))) is not None
    ):
        check_finite(averaged, source.ema, "; --no-ema takes the online weights")
        return averaged
    else:
        state = read_weights(source.weights)
    check_finite(state, source.weights)
    return state


def load_model(
    path: str | Path, ema: bool = True, device: str = "cpu"
) -> tuple[AudioAutoencoder, DictConfig]:
    """(model in eval mode with the checkpoint's weights, its resolved config); see the module
    docstring for what PATH may be."""
    source = locate(path)
    cfg = read_config(path, source)
    try:
        model = build_autoencoder(cfg)
    except ConfigError as e:
        raise ConfigError(f"{source.config}: {e}") from None
    load_strict(model, read_state(source, ema), str(source.weights))
    return model.eval().to(device), cfg


def autoencoder_pretransform(
    path: str | None = None,
    config: Mapping | DictConfig | None = None,
    scale: float = 1.0,
    sample: bool = False,
    enable_grad: bool = False,
    sample_rate: int | None = None,
    ema: bool = True,
) -> AutoencoderPretransform:
    """A trained autoencoder as a pretransform (see AutoencoderPretransform for the others).

    path: the trained model (anything `audioae-encode` accepts), loaded strictly, with its EMA
        weights when it has them and `ema`.
    config: instead of `path`, the inner model's config: the model is built with fresh weights,
        which the outer checkpoint's `pretransform.model.*` then replace (`read_config` inlines
        the config of `path` so, and exports store it)."""
    if (path is None) == (config is None):
        raise ConfigError(
            "pretransform: set exactly one of pretransform.path (a trained model) and "
            "pretransform.config (its config, as audioae-export writes it)"
        )
    if path is not None:
        model, _ = load_model(path, ema=ema)
    else:
        model = build_autoencoder(
            config if isinstance(config, DictConfig) else OmegaConf.create(config)
        )
    return AutoencoderPretransform(model, scale, sample, enable_grad, sample_rate)


LOADER = f"{__name__}.{autoencoder_pretransform.__name__}"  # the config's _target_ for it
