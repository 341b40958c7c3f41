"""Oobleck VAEs to and from diffusers' `AutoencoderOobleck` (the Stable Audio Open pipeline's VAE).

diffusers' class is our Oobleck encoder and decoder with a VAE bottleneck and fixed options:
Snake activations (log scale), transposed-conv upsampling, no anti-aliasing, no final tanh,
one `channel_multiples` and `downsampling_ratios` for both networks, no pretransform, as many
audio channels in as out. Its encoder is `encoder_hidden_size` wide and emits
`encoder_hidden_size` channels (mean and scale), so `encoder_hidden_size = 2 * latent_dim`.
An encoder narrower than that (our default: 32 channels, latent_dim 32) is exported widened
with zero weights: the extra channels stay zero all the way (Snake(0) = 0), so the outputs are
the same, for more encoder compute. Weight norm is torch's hook API in both (`weight_g`,
`weight_v`); only module names differ (`MODULES`), and Snake parameters are (1, C, 1) there.

- `to_diffusers(model, sample_rate, out)`: write DIR/config.json and
  DIR/diffusion_pytorch_model.safetensors by diffusers' own `save_pretrained`.
- `read_config(path)`, `read_state(path)`: a diffusers folder as our config and state dict, so
  it is a CKPT everywhere (inference/loading.py); needs no diffusers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from audioae.autoencoder import AudioAutoencoder
from audioae.bottlenecks.vae import VAE
from audioae.errors import AudioAEError, CheckpointError
from audioae.nets.oobleck import Activation1d, OobleckDecoder, OobleckEncoder

CONFIG, WEIGHTS = "config.json", "diffusion_pytorch_model.safetensors"
CLASS = "AutoencoderOobleck"
RES = ("snake1", "conv1", "snake2", "conv2")  # a residual unit's layers.0-3 there


class DiffusersExportError(AudioAEError):
    """A model that diffusers' AutoencoderOobleck cannot express."""


def is_diffusers(path: Path) -> bool:
    """A folder saved by diffusers' AutoencoderOobleck.save_pretrained."""
    try:
        return json.loads((path / CONFIG).read_text()).get("_class_name") == CLASS
    except (OSError, ValueError, AttributeError):
        return False


def module_names(n_blocks: int) -> dict[str, str]:
    """Our module names -> diffusers' for an Oobleck with `n_blocks` strides."""
    names = {"encoder.layers.0": "encoder.conv1", "decoder.layers.0": "decoder.conv1"}
    for i in range(n_blocks):
        ours, theirs = f"encoder.layers.{i + 1}.layers", f"encoder.block.{i}"
        for r in range(3):
            for j, name in enumerate(RES):
                names[f"{ours}.{r}.layers.{j}"] = f"{theirs}.res_unit{r + 1}.{name}"
        names[f"{ours}.3"], names[f"{ours}.4"] = f"{theirs}.snake1", f"{theirs}.conv1"
        ours, theirs = f"decoder.layers.{i + 1}.layers", f"decoder.block.{i}"
        names[f"{ours}.0"], names[f"{ours}.1"] = f"{theirs}.snake1", f"{theirs}.conv_t1"
        for r in range(3):
            for j, name in enumerate(RES):
                names[f"{ours}.{r + 2}.layers.{j}"] = f"{theirs}.res_unit{r + 1}.{name}"
    for part in ("encoder", "decoder"):
        names[f"{part}.layers.{n_blocks + 1}"] = f"{part}.snake1"
        names[f"{part}.layers.{n_blocks + 2}"] = f"{part}.conv2"
    return names


def _rename(state: dict[str, Tensor], names: dict[str, str], source: object) -> dict:
    out = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        if module not in names:
            raise CheckpointError(f"{source}: unexpected weight {key} for an Oobleck VAE")
        out[f"{names[module]}.{param}"] = value
    return out


def oobleck_layout(model: AudioAutoencoder) -> dict:
    """diffusers' config for `model` (without the widening); DiffusersExportError naming the
    first thing that does not fit."""

    def refuse(what: str):
        raise DiffusersExportError(f"diffusers' AutoencoderOobleck cannot express {what}")

    enc, dec = model.encoder, model.decoder
    if model.pretransform is not None:
        refuse(f"a pretransform ({type(model.pretransform).__name__})")
    if type(enc) is not OobleckEncoder or type(dec) is not OobleckDecoder:
        refuse(f"encoder {type(enc).__name__} / decoder {type(dec).__name__} (Oobleck only)")
    if type(model.bottleneck) is not VAE:
        refuse(f"bottleneck {type(model.bottleneck).__name__} (a plain VAE only)")
    if model.in_channels != model.out_channels:
        refuse(f"in_channels={model.in_channels} != out_channels={model.out_channels}")
    if model.soft_clip:
        refuse("soft_clip=true")
    for part, net in (("encoder", enc), ("decoder", dec)):
        kinds = {type(m) for m in net.modules()}
        if nn.ELU in kinds:
            refuse(f"{part}.use_snake=false (it has Snake activations only)")
        if Activation1d in kinds:
            refuse(f"{part}.antialias_activation=true")
    if any(isinstance(m, nn.Upsample) for m in dec.modules()):
        refuse("decoder.use_nearest_upsample=true")
    if isinstance(dec.layers[-1], nn.Tanh):
        refuse("decoder.final_tanh=true")
    blocks = enc.layers[1:-2]
    widths = [enc.layers[0].out_channels] + [b.layers[4].out_channels for b in blocks]
    strides = [b.layers[4].stride[0] for b in blocks]
    dec_blocks = dec.layers[1:-3]
    dec_widths = [b.layers[1].out_channels for b in reversed(dec_blocks)]
    dec_widths.append(dec.layers[0].out_channels)
    dec_strides = [b.layers[1].stride[0] for b in reversed(dec_blocks)]
    mults = [w // widths[0] for w in widths[1:]]
    if dec_strides != strides or [w // dec_widths[0] for w in dec_widths[1:]] != mults:
        refuse(
            f"decoder strides/c_mults ({dec_strides}, {dec_widths}) other than the encoder's "
            f"({strides}, {widths}): both use one downsampling_ratios and channel_multiples"
        )
    if widths[0] > 2 * model.latent_dim:
        refuse(
            f"encoder.channels={widths[0]} > 2 * latent_dim={2 * model.latent_dim}: its encoder "
            "is 2 * latent_dim wide (encoder_hidden_size)"
        )
    return {
        "encoder_hidden_size": 2 * model.latent_dim,
        "downsampling_ratios": strides,
        "channel_multiples": mults,  # it prepends the 1 of the first conv, as we do
        "decoder_channels": dec_widths[0],
        "decoder_input_channels": model.latent_dim,
        "audio_channels": model.in_channels,
    }


def _embed(value: Tensor, shape: torch.Size, key: str) -> Tensor:
    """`value` in the leading corner of a zero tensor of `shape` (the widened encoder). A padded
    weight-norm row gets g = 0 and v = 1: weight 0 (v = 0 would be 0/0)."""
    if value.shape == shape:
        return value
    if value.dim() == 1 and math.prod(shape) == value.numel():  # Snake (C,) -> (1, C, 1)
        return value.reshape(shape)
    out = torch.zeros(shape, dtype=value.dtype)
    if value.dim() == 1 and len(shape) == 3:  # a Snake of a widened layer
        out[0, : value.numel(), 0] = value
        return out
    if key.endswith("weight_v"):
        out[value.shape[0] :] = 1
    out[tuple(slice(0, n) for n in value.shape)] = value
    return out


def to_diffusers(model: AudioAutoencoder, sample_rate: int, out: Path) -> dict:
    """Write `model` as a diffusers AutoencoderOobleck folder; returns its config."""
    layout = oobleck_layout(model)
    try:
        from diffusers import AutoencoderOobleck
    except ImportError:
        raise DiffusersExportError(
            'diffusers is not installed: pip install -e ".[diffusers]"'
        ) from None

    target = AutoencoderOobleck(**layout, sampling_rate=int(sample_rate))
    own = target.state_dict()
    names = module_names(len(layout["downsampling_ratios"]))
    state = _rename(model.state_dict(), names, "model")
    target.load_state_dict({k: _embed(v, own[k].shape, k) for k, v in state.items()})
    target.save_pretrained(out, safe_serialization=True)
    width = model.encoder.layers[0].out_channels
    if width < layout["encoder_hidden_size"]:
        print(
            f"note: diffusers' encoder is 2 * latent_dim = {layout['encoder_hidden_size']} "
            f"channels wide; ours ({width}) is widened with zero weights (same outputs)"
        )
    return dict(target.config)


def _config(path: Path) -> dict:
    try:
        config = json.loads((path / CONFIG).read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path / CONFIG}: unreadable ({e})") from None
    return config


def read_config(path: Path) -> DictConfig:
    """Our config of a diffusers AutoencoderOobleck folder (through the stable-audio-tools
    converter: its model_config.json is the same architecture)."""
    from audioae.convert import sat_config

    c = _config(path)
    try:
        hidden, latent = int(c["encoder_hidden_size"]), int(c["decoder_input_channels"])
        strides, mults = [int(s) for s in c["downsampling_ratios"]], c["channel_multiples"]
        channels, rate = int(c["audio_channels"]), int(c["sampling_rate"])
        dec_channels = int(c["decoder_channels"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path / CONFIG}: not an AutoencoderOobleck config ({e})") from None
    if hidden != 2 * latent:
        raise CheckpointError(
            f"{path / CONFIG}: encoder_hidden_size={hidden} is not 2 * decoder_input_channels="
            f"{latent} (the VAE's mean and scale)"
        )
    ratio = math.prod(strides)
    net = {"c_mults": [int(m) for m in mults], "strides": strides, "use_snake": True}
    sat = {
        "model_type": "autoencoder",
        "sample_rate": rate,
        "sample_size": ratio * max(1, round(65536 / ratio)),
        "model": {
            "encoder": {
                "type": "oobleck",
                "config": {
                    "in_channels": channels,
                    "channels": hidden,
                    "latent_dim": hidden,
                    **net,
                },
            },
            "decoder": {
                "type": "oobleck",
                "config": {
                    "out_channels": channels,
                    "channels": dec_channels,
                    "latent_dim": latent,
                    "final_tanh": False,
                    **net,
                },
            },
            "bottleneck": {"type": "vae"},
            "latent_dim": latent,
            "downsampling_ratio": ratio,
            "io_channels": channels,
        },
    }
    return sat_config(sat, model_only=True)


def read_state(path: Path, weights: Path) -> dict[str, Tensor]:
    """Our state dict of a diffusers AutoencoderOobleck folder's weights."""
    from audioae.inference.weights import read_weights

    n_blocks = len(_config(path).get("downsampling_ratios", []))
    theirs = {v: k for k, v in module_names(n_blocks).items()}
    state = {}
    for key, value in read_weights(weights).items():
        # parametrization names, should a diffusers version switch to them
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        if key.endswith((".alpha", ".beta")):
            value = value.reshape(-1)
        state[key] = value
    return _rename(state, theirs, weights)
