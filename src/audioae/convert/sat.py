"""stable-audio-tools autoencoder model configs (JSON) to audioae's Hydra config.

`sat_to_overrides(json)` gives the Hydra overrides that `audioae-train` accepts verbatim;
`sat_config(path)` the composed train config. The converted config builds a model with the
state-dict keys and shapes stable-audio-tools builds, and trains it with the same
hyper-parameters: every value stable-audio-tools would use, its defaults included, is stated
(sat_schema.py says where each key goes), then overrides.py keeps the ones that differ from
audioae's defaults and checks the composed result.

Strict by default: a key that would not take effect, or a feature audioae lacks, is a
ConfigError naming the JSON path and the file; `lenient=True` drops unknown and unsupported keys
with one SATConversionWarning each. Keys that stable-audio-tools itself ignores (loss `type`
fields, `learning_rate` beside `optimizer_configs`, a lone scheduler) are accepted and listed in
`Conversion.notes`, with a warning where dropping them is surprising.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from audioae.build import model_widths
from audioae.convert import sat_schema as S
from audioae.convert.overrides import Delta, delta
from audioae.convert.sat_read import Reader, load_json, read_component, read_type
from audioae.convert.sat_training import read_training

TOP_KEYS = ("model_type", "sample_size", "sample_rate", "audio_channels", "model", "training")
MODEL_KEYS = (
    "encoder", "decoder", "bottleneck", "latent_dim", "downsampling_ratio", "io_channels",
    "in_channels", "out_channels", "pretransform",
)  # fmt: skip


@dataclass
class Conversion:
    """A converted config: its overrides, the composed config and what was not carried."""

    source: str
    delta: Delta
    notes: dict[str, str]  # JSON path -> why its value is not carried verbatim

    @property
    def overrides(self) -> list[str]:
        return self.delta.overrides()

    @property
    def cfg(self) -> DictConfig:
        return self.delta.cfg


def preset(conversion: Conversion, name: str) -> str:
    """The experiment preset (experiments/NAME.yaml) of a conversion."""
    source = Path(conversion.source).name
    header = (
        f"Converted from stable-audio-tools' {source} by audioae-convert.\n"
        f"Regenerate, don't edit: audioae-convert {source} --experiment {name} --force\n"
        f"Train: audioae-train experiment={name} data=audio_dir data.path=DIR"
    )
    return conversion.delta.experiment(header)


def sat_to_overrides(
    model_config: dict, source: str = "<config>", lenient: bool = False
) -> list[str]:
    """Hydra overrides for `audioae-train` that reproduce a stable-audio-tools model config."""
    return convert(model_config, source, lenient).overrides


def sat_config(
    path_or_dict: str | Path | dict, lenient: bool = False, model_only: bool = False
) -> DictConfig:
    """The composed audioae train config of a stable-audio-tools model config (file or dict);
    `model_only` as in `convert`."""
    if isinstance(path_or_dict, dict):
        return convert(path_or_dict, "<config>", lenient, model_only).cfg
    return convert(load_json(path_or_dict), str(path_or_dict), lenient, model_only).cfg


def convert(
    model_config: dict, source: str = "<config>", lenient: bool = False, model_only: bool = False
) -> Conversion:
    """`model_only`: the model alone (for inference); `training` and `audio_channels`, which
    drive stable-audio-tools' training alone, are neither read nor checked."""
    r = Reader(source, lenient)
    top = r.mapping(model_config, "", TOP_KEYS)
    model_type = r.get(top, "model_type", "", "str")
    if model_type != "autoencoder":
        r.fail("model_type", f"{model_type!r} is not supported; audioae trains 'autoencoder'")
    wanted: dict[str, Any] = {
        "sample_rate": r.get(top, "sample_rate", "", "int"),
        "sample_size": r.get(top, "sample_size", "", "int"),
    }
    model = r.mapping(r.get(top, "model", "", "mapping"), "model", MODEL_KEYS)
    choices, checks = _model(r, model, wanted)
    if not model_only:
        if "training" in top:
            read_training(r, top["training"], choices, wanted)
        else:
            r.warn("training", "absent: audioae's training defaults apply")
        _data_channels(r, top, wanted)
        choices["augment"] = S.AUGMENT_CHOICE  # its loaders' PhaseFlipper, always on
    result = delta(choices, _ordered(wanted))
    _check_widths(r, result.cfg, checks)
    return Conversion(source, result, r.notes)


def _data_channels(r: Reader, top: dict, wanted: dict) -> None:
    """`audio_channels` and `training.force_input_mono` against the model's channels.

    stable-audio-tools loads `audio_channels` (1 = mono, else stereo), feeds the encoder that
    audio or, with force_input_mono, its channel mean, and compares the decoder's output with
    the audio as loaded. audioae loads max(in_channels, out_channels) and derives input and
    target (AudioAutoencoder.inputs_and_targets): the same wherever stable-audio-tools can train."""
    audio = r.get(top, "audio_channels", "", "int", 2)
    loaded = 1 if audio == 1 else 2
    training = top.get("training") if isinstance(top.get("training"), dict) else {}
    mono = r.get(training, "force_input_mono", "training", "bool", False)
    ins, outs = wanted["in_channels"], wanted["out_channels"]
    if mono and ins != 1:
        r.fail(
            "training.force_input_mono",
            f"true feeds the encoder mono audio, but {S.DERIVED['audio_in']}={ins}",
        )
    if (1 if mono else loaded) != ins:
        r.fail(
            "audio_channels",
            f"{audio} contradicts {S.DERIVED['audio_in']}={ins}: stable-audio-tools feeds the "
            f"encoder the audio as loaded (1 = mono, else stereo)"
            + ("; set training.force_input_mono: true for a mono-in model" if ins == 1 else ""),
        )
    if loaded != outs:
        r.fail(
            "audio_channels",
            f"{audio} contradicts model.out_channels={outs}: stable-audio-tools compares the "
            f"decoded audio with the audio as loaded (1 = mono, else stereo)",
        )


def _model(r: Reader, m: dict, wanted: dict) -> tuple[dict, list]:
    """Encoder, decoder, bottleneck and the widths; returns group choices and width checks."""
    wanted["io_channels"] = r.get(m, "io_channels", "model", "int")
    wanted["in_channels"] = r.get(m, "in_channels", "model", "int", wanted["io_channels"])
    wanted["out_channels"] = r.get(m, "out_channels", "model", "int", wanted["io_channels"])
    wanted["latent_dim"] = r.get(m, "latent_dim", "model", "int")
    choices: dict[str, str] = {}
    checks: list[tuple[str, Any, str, bool]] = []
    freeze, parts = [], {}
    for group, table in (
        ("encoder", S.ENCODERS),
        ("decoder", S.DECODERS),
        ("bottleneck", S.BOTTLENECKS),
    ):
        path = f"model.{group}"
        allowed = ("type", "config", "requires_grad") + (
            ("soft_clip",) if group == "decoder" else ()
        )
        node = r.mapping(r.get(m, group, "model", "mapping"), path, allowed)
        spec = read_type(r, node, path, table, S.UNSUPPORTED_TYPES[group])
        config = r.get(node, "config", path, "mapping", {} if group == "bottleneck" else S.REQUIRED)
        parts[group] = (spec, read_component(r, spec, config, f"{path}.config", wanted, checks))
        if not r.get(node, "requires_grad", path, "bool", True):
            freeze.append(group)
        if group != "decoder" or spec.choice != choices["encoder"]:
            choices[group] = spec.choice
    pre_ratio = 1
    if m.get("pretransform") is not None:
        pre_ratio = _pretransform(r, m["pretransform"], choices, wanted, checks)
    wanted["soft_clip"] = r.get(m["decoder"], "soft_clip", "model.decoder", "bool", False)
    wanted["freeze"] = freeze

    (enc, enc_cfg), (dec, dec_cfg) = parts["encoder"], parts["decoder"]
    down = math.prod(enc_cfg.get(enc.ratio, enc.keys[enc.ratio].default))
    up = math.prod(dec_cfg.get(dec.ratio, dec.keys[dec.ratio].default))
    if up != down:
        r.fail(
            f"model.decoder.config.{dec.ratio}",
            f"upsamples by {up} but model.encoder.config.{enc.ratio} downsample by {down}",
        )
    ratio = r.get(m, "downsampling_ratio", "model", "int")
    if ratio != down * pre_ratio:
        times = f" times the pretransform's {pre_ratio}" if pre_ratio > 1 else ""
        r.fail(
            "model.downsampling_ratio",
            f"{ratio} is not the product of model.encoder.config."
            f"{enc.ratio}{times} ({down * pre_ratio})",
        )
    if wanted["sample_size"] % ratio:
        r.fail(
            "sample_size",
            f"{wanted['sample_size']} is not a multiple of model.downsampling_ratio ({ratio})",
        )
    return choices, checks


def _pretransform(r: Reader, node: Any, choices: dict, wanted: dict, checks: list) -> int:
    """model.pretransform (wavelet, pqmf); returns its downsampling ratio."""
    path = "model.pretransform"
    r.check(node, "mapping", path)
    kind = r.get(node, "type", path, "str")
    if kind not in S.PRETRANSFORMS:
        r.fail(
            f"{path}.type",
            f"{kind!r} is not supported yet; supported: "
            f"{', '.join(S.PRETRANSFORMS)} (a trained autoencoder in front: "
            "pretransform=autoencoder pretransform.path=RUN)",
        )
    node = r.mapping(node, path, ("type", "config", "enable_grad"))
    spec = S.PRETRANSFORMS[kind]
    choices["pretransform"] = spec.choice
    config = read_component(
        r, spec, r.get(node, "config", path, "mapping"), f"{path}.config", wanted, checks
    )
    wanted["pretransform.enable_grad"] = r.get(node, "enable_grad", path, "bool", False)
    return 2 ** config["levels"] if kind == "wavelet" else config.get("num_bands", 16)


def _check_widths(r: Reader, cfg: DictConfig, checks: list) -> None:
    """The widths the JSON states against those audioae derives from the composed config."""
    actual = model_widths(cfg)
    for name, value, path, defaulted in checks:
        if value != actual[name]:
            r.fail(
                path,
                f"{value}{' (the default of stable-audio-tools)' if defaulted else ''} "
                f"contradicts {S.DERIVED[name]}, which is {actual[name]} here",
            )


def _ordered(wanted: dict) -> dict:
    """Top-level keys first, then the groups in train.yaml's order (a readable preset)."""
    order = ["encoder", "decoder", "bottleneck", "pretransform", "loss", "discriminator", "optim"]
    order.append("trainer")
    rank = {name: i for i, name in enumerate(order, start=1)}
    return dict(sorted(wanted.items(), key=lambda kv: rank.get(kv[0].split(".")[0], 0)))
