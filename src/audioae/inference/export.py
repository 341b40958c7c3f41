"""Export a trained model as a self-contained folder (`audioae-export RUN --out DIR [--sat]`).

DIR/model.safetensors   the autoencoder's weights (the EMA copy when the run kept one)
DIR/config.yaml         the run's resolved config; an autoencoder pretransform's `path` is
                        replaced by its config (its weights are in model.safetensors)
DIR/model_config.json   with --sat: stable-audio-tools' config, so that its loader (and
                        audioae's) reads DIR as a stable-audio-tools model
DIR/latent_stats.json   with --latent-stats: audioae-pre-encode's stats.json of these weights
                        (latent mean, std, scale; inference.latent_stats.read_latent_stats)

Our state-dict keys are the reference's (encoder.*, decoder.*, bottleneck.*,
pretransform.model.*, weight_g/weight_v), so one model.safetensors serves both layouts.
RUN is anything audioae-encode accepts (a run dir: its newest checkpoint).

`format="diffusers"` writes a diffusers AutoencoderOobleck folder instead
(inference/diffusers.py), `format="onnx"` ONNX graphs for onnxruntime (inference/onnx.py).

    audioae-export outputs/2025-01-01/12-00-00 --out exports/my_vae --sat
    audioae-encode exports/my_vae song.flac --out latents/
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf
from safetensors.torch import save_file

from audioae.build import build_autoencoder
from audioae.errors import AudioAEError
from audioae.files import atomic_write, check_new, check_writable, write_text
from audioae.inference.latent_stats import LATENT_STATS, read_stats
from audioae.inference.loading import CONFIG, SAT_CONFIG, WEIGHTS, locate, read_config, read_state
from audioae.inference.weights import load_strict, state_hash
from audioae.runs import holds_checkpoints

FORMATS = ("audioae", "diffusers", "onnx")


def export(
    run: str | Path,
    out: Path,
    sat: bool = False,
    ema: bool = True,
    force: bool = False,
    format: str = "audioae",
    latent_stats: Path | None = None,
):
    """Write the export folder; returns the hash of the exported weights. latent_stats: a
    stats.json of audioae-pre-encode made with these weights, stored beside them."""
    if holds_checkpoints(out):  # commands would read the run as this export from then on
        raise AudioAEError(
            f"--out {out}: a run or checkpoint folder (it holds checkpoints); export into a "
            "folder of its own, e.g. exports/NAME"
        )
    source = locate(run)
    cfg = read_config(run, source)
    state = read_state(source, ema=ema)
    model = build_autoencoder(cfg)
    load_strict(model, state, str(source.weights))  # fails before writing
    if format != "audioae":
        if latent_stats is not None:
            raise AudioAEError(
                f"--latent-stats is stored with audioae exports, not --format {format}"
            )
        return export_foreign(model.eval(), cfg.sample_rate, out, format, sat, force)
    sat_config = None
    if sat:
        from audioae.inference.sat import to_sat

        sat_config = to_sat(cfg)
    tensors = {k: v.detach().contiguous() for k, v in state.items()}
    stats = latent_stats and _latent_stats(latent_stats, state_hash(tensors), model.latent_dim)
    check_writable(out)
    check_new([out / n for n in (WEIGHTS, CONFIG, SAT_CONFIG, LATENT_STATS)], force)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / WEIGHTS) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt"})
    write_text(out / CONFIG, OmegaConf.to_yaml(cfg, resolve=True))
    if sat_config is not None:
        write_text(out / SAT_CONFIG, json.dumps(sat_config, indent=4) + "\n")
    elif (out / SAT_CONFIG).exists():
        (out / SAT_CONFIG).unlink()  # a stale one from an earlier --sat export
    if stats is not None:
        write_text(out / LATENT_STATS, json.dumps(stats, indent=2) + "\n")
    elif (out / LATENT_STATS).exists():
        (out / LATENT_STATS).unlink()  # an earlier export's, maybe of other weights
    digest = state_hash(tensors)
    print(f"exported {source.weights} (sha256 {digest[:16]}) to {out}")
    return digest


def export_foreign(model, sample_rate: int, out: Path, format: str, sat: bool, force: bool):
    """The diffusers or ONNX export of a loaded model; returns the hash of its weights."""
    if sat:
        raise AudioAEError(f"--sat writes audioae exports only, not --format {format}")
    if format == "diffusers":
        from audioae.inference import diffusers as target

        names = (target.CONFIG, target.WEIGHTS)
        write = target.to_diffusers
    elif format == "onnx":
        from audioae.inference import onnx as target

        names, write = target.FILES, target.to_onnx
    else:
        raise AudioAEError(f"--format {format}: choose from {', '.join(FORMATS)}")
    digest = state_hash(model.state_dict())  # before to_onnx folds the weights
    check_writable(out)
    check_new([out / n for n in names], force)
    write(model, sample_rate, out)
    print(f"exported (sha256 {digest[:16]}) as {format} to {out}")
    return digest


def _latent_stats(path: Path, digest: str, channels: int) -> dict:
    """A stats.json, refused when it was computed with other weights than the exported ones."""
    stats = read_stats(path, channels)
    made_with = stats.get("model_hash")
    if made_with and made_with != digest:
        raise AudioAEError(
            f"{path}: latent statistics of model {made_with[:12]}, but the exported weights are "
            f"{digest[:12]}; pre-encode with the model being exported"
        )
    return stats
