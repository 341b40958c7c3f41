"""stable-audio-tools JSON -> audioae config: same model, same training; and back.

fixtures/configs/ holds the four reference configs (copies of shared/sat-configs) and small ones
exercising other types and defaults; fixtures/<name>.keys.json is the state-dict layout that
stable-audio-tools 0.0.19 builds from each (fixtures/make_sat_keys.py, run in a throwaway venv).
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from audioae.build import build, build_autoencoder
from audioae.convert import (
    SATConversionWarning,
    config_to_sat,
    convert,
    load_json,
    preset,
    sat_config,
    sat_to_overrides,
)
from audioae.errors import ConfigError
from audioae.losses.weighting import flatten
from conftest import CONF, EXPERIMENTS, compose_train

FIXTURES = Path(__file__).parent / "fixtures"
CONFIGS = sorted(p.stem for p in (FIXTURES / "configs").glob("*.json"))
REFERENCE = [
    "stable_audio_2_0_vae",
    "stable_audio_1_0_vae",
    "dac_2048_32_vae",
    "encodec_musicgen_rvq",
]
SHARED = CONF.parents[1] / "shared" / "sat-configs"  # beside the repository
# stable-audio-tools' reference section 2.2: parameters / state-dict tensors
EXPECTED = {
    "stable_audio_2_0_vae": (156_112_514, 365),
    "stable_audio_1_0_vae": (133_431_300, 240),
    "dac_2048_32_vae": (134_592_930, 240),
    "encodec_musicgen_rvq": (53_259_458, 140),
}


def load(name: str) -> dict:
    return load_json(FIXTURES / "configs" / f"{name}.json")


def quiet_convert(config: dict, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SATConversionWarning)
        return convert(config, **kw)


_CONVERTED: dict = {}


def converted(name: str):
    if name not in _CONVERTED:
        _CONVERTED[name] = quiet_convert(load(name), source=f"{name}.json")
    return _CONVERTED[name]


def layout(module: torch.nn.Module) -> dict:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def build_model(cfg):
    try:
        with torch.device("meta"):
            return build_autoencoder(cfg)
    except (RuntimeError, ConfigError):  # FSQ calls .item() while building: use the CPU
        return build_autoencoder(cfg)


@pytest.mark.skipif(not SHARED.is_dir(), reason="no shared/sat-configs beside the repository")
def test_fixture_configs_are_the_shared_ones():
    for path in SHARED.glob("*.json"):
        assert json.loads(path.read_text()) == load(path.stem), path.name


@pytest.mark.parametrize("name", CONFIGS)
def test_builds_the_reference_state_dict(name):
    """Keys, shapes and parameter count equal what stable-audio-tools builds from the JSON."""
    reference = json.loads((FIXTURES / f"{name}.keys.json").read_text())["autoencoder"]
    model = build_model(converted(name).cfg)
    ours = layout(model)
    assert sorted(ours) == sorted(reference["keys"])
    for key, shape in reference["keys"].items():
        if key.endswith("_codebook.initted"):
            # vector-quantize-pytorch >= 1.15 stores this flag as a scalar, 1.14.41 as (1,)
            assert ours[key] in ([1], []), key
        else:
            assert ours[key] == shape, key
    assert sum(p.numel() for p in model.parameters()) == reference["params"]
    if name in EXPECTED:
        assert (reference["params"], len(reference["keys"])) == EXPECTED[name]


def encodec_discriminator(name: str) -> bool:
    training = load(name).get("training", {})
    losses = training.get("loss_configs") or {"discriminator": {"type": "encodec"}}  # default
    return losses.get("discriminator", {}).get("type") == "encodec"


@pytest.mark.parametrize("name", [n for n in CONFIGS if encodec_discriminator(n)])
def test_encodec_discriminator_is_the_reference_network(name):
    """v0.0.19's MS-STFT discriminator (stride (1, 1), weight-normed first conv). audioae's
    dac (stereo) and oobleck discriminators differ from the reference's by design (see their
    modules), so only the encodec one is compared."""
    reference = json.loads((FIXTURES / f"{name}.keys.json").read_text())["discriminator"]
    cfg = converted(name).cfg
    with torch.device("meta"):
        disc = build(cfg.discriminator, "discriminator")
    assert layout(disc) == reference["keys"]


def leaves(tree, prefix=""):
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, tree


def lookup(tree, path):
    for part in path.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return "<absent>"
        tree = tree[part]
    return tree


@pytest.mark.parametrize("name", CONFIGS)
def test_round_trip_is_the_identity(name):
    """JSON -> Hydra -> JSON keeps every supported key's value (defaults may be filled in);
    the result is a fixed point, and it converts to the same overrides.

    Not carried verbatim, and listed in Conversion.notes: keys stable-audio-tools ignores
    (loss `type` fields, `learning_rate` beside optimizer_configs), no-op keys at their
    defaults, and encoder_freeze_on_warmup with warmup 0 (written as requires_grad: false)."""
    original = load(name)
    conversion = converted(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SATConversionWarning)  # nothing lost on the way back
        back = config_to_sat(conversion.cfg)
        again = quiet_convert(copy.deepcopy(back))
        assert config_to_sat(again.cfg) == back
    changed = [
        (path, value, lookup(back, path))
        for path, value in leaves(original)
        if path not in conversion.notes and lookup(back, path) != value
    ]
    assert changed == []
    assert again.overrides == conversion.overrides
    assert json.loads(json.dumps(back)) == back  # plain JSON


@pytest.mark.parametrize("name", REFERENCE)
def test_presets_are_the_converter_output(name):
    """experiments/NAME.yaml is what `audioae-convert NAME.json --experiment NAME` writes, and
    composes to the same config as the overrides."""
    conversion = converted(name)
    assert (EXPERIMENTS / f"{name}.yaml").read_text() == preset(conversion, name), (
        f"regenerate: audioae-convert {name}.json --experiment {name} --force"
    )
    from_preset = OmegaConf.to_container(compose_train(f"experiment={name}"), resolve=True)
    assert from_preset == OmegaConf.to_container(conversion.cfg, resolve=True)


def optimizer_of(node, n=3):
    return instantiate(node)([torch.nn.Parameter(torch.zeros(n))])


def test_stable_audio_2_training_hyperparameters():
    cfg = converted("stable_audio_2_0_vae").cfg
    gen = optimizer_of(cfg.optim.generator.optimizer)
    disc = optimizer_of(cfg.optim.discriminator.optimizer)
    assert isinstance(gen, torch.optim.AdamW)
    assert gen.param_groups[0]["betas"] == (0.8, 0.99) or gen.param_groups[0]["betas"] == [
        0.8,
        0.99,
    ]
    assert (gen.defaults["lr"], gen.defaults["weight_decay"]) == (1.5e-4, 1e-3)
    assert (disc.defaults["lr"], disc.defaults["weight_decay"]) == (3e-4, 1e-3)
    for net, opt in (("generator", gen), ("discriminator", disc)):
        sched = instantiate(cfg.optim[net].scheduler)(opt)
        assert type(sched).__name__ == "InverseLR"
        assert (sched.inv_gamma, sched.power, sched.warmup, sched.final_lr) == (
            200000,
            0.5,
            0.999,
            0.0,
        )
    assert OmegaConf.to_container(cfg.loss.weights) == {
        "spec": {"mrstft": 1.0, "mel": 0.0},  # audioae's mel term: removed
        "time": {"l1": 0.0, "l2": 0.0},
        "adv": {"gen": 0.1, "feat": 5.0},
    }
    assert cfg.bottleneck.loss_weights == {"kl": 1e-4}
    assert cfg.loss.adversarial and cfg.discriminator.filters == 64
    assert list(cfg.discriminator.stride) == [1, 1] and cfg.discriminator.weight_norm_first
    assert list(cfg.loss.terms.spectral.fft_sizes) == [2048, 1024, 512, 256, 128, 64, 32]
    assert cfg.loss.terms.spectral.perceptual_weighting
    ema = cfg.trainer.ema  # 0.0.20's: beta 0.999, every 10th batch, a copy for 2000 updates
    assert cfg.trainer.use_ema
    assert (ema.decay, ema.power, ema.every, ema.start) == (0.999, 0.75, 5, 2000)
    s = cfg.trainer.schedule
    assert (s.warmup_steps, s.encoder_freeze_on_warmup, s.disc_during_warmup) == (0, False, True)
    assert (s.gen_updates, s.disc_updates, s.joint) == (1, 1, False)  # G even, D odd steps
    assert cfg.trainer.demo_every == 2000
    assert (cfg.optim.generator.clip_grad_norm, cfg.optim.discriminator.clip_grad_norm) == (0, 0)


def test_stable_audio_1_exponential_lr_and_kl():
    cfg = converted("stable_audio_1_0_vae").cfg
    for net in ("generator", "discriminator"):
        opt = optimizer_of(cfg.optim[net].optimizer)
        assert (opt.defaults["lr"], opt.defaults["weight_decay"]) == (1e-4, 0.01)  # torch's
        sched = instantiate(cfg.optim[net].scheduler)(opt)
        assert isinstance(sched, torch.optim.lr_scheduler.ExponentialLR)
        assert sched.gamma == 0.999996
    assert cfg.bottleneck.loss_weights.kl == 1e-6
    assert list(cfg.discriminator.n_ffts) == [2048, 1024, 512, 256, 128]


def test_defaults_of_stable_audio_tools_are_materialised():
    """Absent keys take stable-audio-tools' defaults, not audioae's."""
    cfg = converted("dac_2048_32_vae").cfg  # no optimizer_configs, no bottleneck loss entry
    for net in ("generator", "discriminator"):
        opt = optimizer_of(cfg.optim[net].optimizer)
        assert isinstance(opt, torch.optim.AdamW)
        assert (opt.defaults["lr"], opt.defaults["weight_decay"]) == (1e-4, 0.01)
        assert list(opt.defaults["betas"]) == [0.8, 0.99]
        assert cfg.optim[net].scheduler is None
    assert cfg.bottleneck.loss_weights.kl == 1e-6 and not cfg.trainer.use_ema

    cfg = converted("small_oobleck_defaults").cfg  # no loss_configs: the built-in defaults
    assert cfg.encoder.use_snake is False and cfg.decoder.final_tanh is True
    assert list(cfg.encoder.c_mults) == [1, 2, 4, 8] and list(cfg.encoder.strides) == [2, 4, 8, 8]
    assert cfg.soft_clip and list(cfg.freeze) == ["bottleneck"]
    assert cfg.loss.adversarial and cfg.discriminator.filters == 32
    assert list(cfg.discriminator.n_ffts) == [2048, 1024, 512, 256, 128, 64, 32]
    model = build_autoencoder(cfg)
    assert not any(p.requires_grad for p in model.bottleneck.parameters())
    assert all(p.requires_grad for p in model.encoder.parameters())


def test_other_optimizers_schedulers_and_losses():
    cfg = converted("small_seanet_wasserstein").cfg
    gen = optimizer_of(cfg.optim.generator.optimizer)
    disc = optimizer_of(cfg.optim.discriminator.optimizer)
    assert type(gen) is torch.optim.Adam and gen.defaults["lr"] == 2e-4
    assert list(gen.defaults["betas"]) == [0.9, 0.999]  # torch's, not audioae's preset
    assert type(disc) is torch.optim.SGD and disc.defaults["momentum"] == 0.9
    assert "betas" not in cfg.optim.discriminator.optimizer
    sched = instantiate(cfg.optim.generator.scheduler)(gen)
    assert isinstance(sched, torch.optim.lr_scheduler.StepLR) and sched.step_size == 1000
    inverse = instantiate(cfg.optim.discriminator.scheduler)(disc)
    assert (inverse.inv_gamma, inverse.power, inverse.warmup) == (1000, 0.5, 0.0)
    weights = OmegaConf.to_container(cfg.loss.weights)
    assert weights == {
        "spec": {"mrstft": 2.0, "mel": 0.0},
        "time": {"l1": 0.1, "l2": 0.2},
        "adv": {"gen": 0.5, "feat": 2.0},
    }
    assert cfg.bottleneck.loss_weights.mmd == 10.0 and cfg.loss.terms.spectral.w_lin_mag == 1.0
    s = cfg.trainer.schedule
    assert (s.warmup_steps, s.encoder_freeze_on_warmup) == (100, True)
    assert cfg.trainer.demo_every == 500 and list(cfg.freeze) == ["decoder"]
    # SEANet: stable-audio-tools' encoder downsamples in the order written; ours reversed
    assert list(cfg.encoder.ratios) == [5, 4, 2] and list(cfg.decoder.ratios) == [5, 2, 4]


def test_rvq_and_dac_rvq_weights():
    cfg = converted("encodec_musicgen_rvq").cfg
    assert flatten(cfg.bottleneck.loss_weights) == {"vq/commitment_loss": 1.0}
    assert (cfg.bottleneck.kmeans_iters, cfg.bottleneck.threshold_ema_dead_code) == (50, 2)
    cfg = converted("small_dac_rvq").cfg
    assert flatten(cfg.bottleneck.loss_weights) == {
        "vq/codebook_loss": 1.0,
        "vq/commitment_loss": 0.25,
    }
    assert cfg.discriminator.loss == "hinge"  # use_hinge: true


def edit(name: str, path: str, value) -> dict:
    config = load(name)
    node = config
    *heads, last = path.split(".")
    for part in heads:
        node = node.setdefault(part, {})
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return config


DELETE = object()


def error_of(config: dict, **kw) -> str:
    with pytest.raises(ConfigError) as err:
        quiet_convert(config, source="model_config.json", **kw)
    message = str(err.value)
    assert "\n" not in message and message.startswith("model_config.json: ")
    return message


def test_unknown_key_names_path_file_and_supported_keys():
    config = edit("encodec_musicgen_rvq", "model.bottleneck.config.foo", 1)
    message = error_of(config)
    assert "model.bottleneck.config.foo: unknown key" in message
    assert "codebook_size" in message and "--lenient" in message
    with pytest.warns(SATConversionWarning, match=r"model\.bottleneck\.config\.foo"):
        overrides = sat_to_overrides(config, lenient=True)
    assert overrides == converted("encodec_musicgen_rvq").overrides


def test_lenient_warns_once_per_key():
    config = edit("stable_audio_2_0_vae", "training.batch_size", 8)
    config["model"]["encoder"]["config"]["chanels"] = 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        convert(config, lenient=True)
    ours = [str(w.message) for w in caught if w.category is SATConversionWarning]
    assert len(ours) == 2
    assert any("training.batch_size" in m for m in ours)
    assert any("model.encoder.config.chanels" in m for m in ours)


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (
            "model.encoder.config.strides",
            "4,4,8,8",
            "model.encoder.config.strides: expected a list of integers",
        ),
        ("sample_rate", "44100", "sample_rate: expected an integer"),
        ("model.decoder.soft_clip", 1, "model.decoder.soft_clip: expected true or false"),
        ("training.loss_configs.spectral.weights.mrstft", "1", "mrstft: expected a number"),
        ("model.latent_dim", DELETE, "model.latent_dim: missing required key"),
        ("model.encoder.type", DELETE, "model.encoder.type: missing required key"),
        (
            "training.loss_configs.discriminator.weights.feature_matching",
            DELETE,
            "feature_matching: missing required key",
        ),
        (
            "model.encoder.config.latent_dim",
            100,
            "model.encoder.config.latent_dim: 100 contradicts",
        ),
        (
            "model.decoder.config.latent_dim",
            DELETE,
            "model.decoder.config.latent_dim: 32 (the default of stable-audio-tools) contradicts",
        ),
        ("model.downsampling_ratio", 1024, "model.downsampling_ratio: 1024 is not the product"),
        ("model.decoder.config.strides", [2, 4, 4, 8, 4], "upsamples by 1024"),
        ("sample_size", 65000, "sample_size: 65000 is not a multiple"),
        ("audio_channels", 1, "audio_channels: 1 contradicts"),
        (
            "training.force_input_mono",
            True,
            "training.force_input_mono: true feeds the encoder mono audio, but model.in_channels",
        ),
        ("model.encoder.type", "taae", "'taae' is not supported by audioae"),
        ("model.encoder.type", "oobleck2", "unknown type 'oobleck2'; supported: oobleck, dac"),
        ("model_type", "diffusion_autoencoder", "model_type: 'diffusion_autoencoder' is not"),
        ("model.pretransform", {"type": "autoencoder", "config": {}}, "not supported yet"),
        ("training.optimizer_configs.autoencoder.optimizer.type", "Adamm", "not a optimizer"),
        (
            "training.optimizer_configs.autoencoder.optimizer.config.betaz",
            [0.9, 0.9],
            "betaz: not an argument of torch.optim.AdamW",
        ),
        ("training.loss_configs.spectral.config.sample_rate", 44100, "set by stable-audio-tools"),
    ],
)
def test_errors_name_the_json_path(path, value, expected):
    assert expected in error_of(edit("stable_audio_2_0_vae", path, value))


@pytest.mark.parametrize(
    "path, value",
    [
        ("training.loss_configs.spectral.decay", 0.999),
        ("training.loss_configs.mrmel", {"config": {}, "weights": {"mrmel": 1.0}}),
        ("training.loss_configs.hubert", {"weights": {"hubert": 1.0}}),
        ("training.teacher_model", {"model_type": "autoencoder"}),
        ("training.latent_mask_ratio", 0.25),
        ("training.eval_loss_configs", {"sisdr": {}}),
        ("training.loss_configs.discriminator.config.loss_type", "rpgan"),
        ("training.loss_configs.discriminator.config.normalize_losses", True),
        ("training.loss_configs.spectral.config.mag_distance", "L2"),
    ],
)
def test_unsupported_features_fail_naming_the_path(path, value):
    message = error_of(edit("stable_audio_2_0_vae", path, value))
    assert path in message and ("not supported" in message or "only" in message)
    assert "--lenient drops it" in message


@pytest.mark.parametrize(
    "path, value",
    [("training.loss_configs.spectral.decay", 0.999), ("training.latent_mask_ratio", 0.25)],
)
def test_lenient_drops_unsupported_features_with_a_warning(path, value):
    config = edit("stable_audio_2_0_vae", path, value)
    with pytest.warns(SATConversionWarning, match=path.replace(".", r"\.")):
        overrides = convert(config, lenient=True).overrides
    assert overrides == converted("stable_audio_2_0_vae").overrides


def test_no_op_keys_at_their_defaults_are_accepted():
    config = edit("stable_audio_2_0_vae", "training.latent_mask_ratio", 0.0)
    config["training"]["loss_configs"]["spectral"]["decay"] = 1.0
    config["training"]["loss_configs"]["mrmel"] = {"weights": {"mrmel": 0.0}}
    conversion = quiet_convert(config)
    assert conversion.overrides == converted("stable_audio_2_0_vae").overrides
    assert "training.loss_configs.mrmel" in conversion.notes


def test_lone_scheduler_is_ignored_as_stable_audio_tools_does():
    config = edit(
        "stable_audio_2_0_vae", "training.optimizer_configs.discriminator.scheduler", DELETE
    )
    with pytest.warns(SATConversionWarning, match="only when both"):
        cfg = convert(config).cfg
    assert cfg.optim.generator.scheduler is None and cfg.optim.discriminator.scheduler is None


def test_freeze_on_warmup_without_warmup_freezes_from_the_start():
    config = edit("stable_audio_2_0_vae", "training.encoder_freeze_on_warmup", True)
    conversion = quiet_convert(config)
    assert list(conversion.cfg.freeze) == ["bottleneck", "encoder"]
    assert not conversion.cfg.trainer.schedule.encoder_freeze_on_warmup
    back = config_to_sat(conversion.cfg)
    assert back["model"]["encoder"]["requires_grad"] is False
    assert back["model"]["bottleneck"]["requires_grad"] is False


def test_weight_for_a_loss_the_bottleneck_lacks_warns():
    config = edit(
        "encodec_musicgen_rvq", "training.loss_configs.bottleneck", {"weights": {"kl": 1}}
    )
    with pytest.warns(SATConversionWarning, match="no effect"):
        convert(config)


def test_invalid_json_reports_line_and_column(tmp_path):
    path = tmp_path / "model_config.json"
    path.write_text('{\n  "model_type": "autoencoder",\n  "sample_rate" 44100\n}\n')
    with pytest.raises(ConfigError, match=r"model_config\.json: invalid JSON at line 3, column 17"):
        sat_config(path)


def test_sat_config_accepts_paths_and_dicts():
    path = FIXTURES / "configs" / "stable_audio_2_0_vae.json"
    a, b = sat_config(path), sat_config(load("stable_audio_2_0_vae"))
    assert OmegaConf.to_container(a) == OmegaConf.to_container(b)
    assert a.encoder._target_.endswith("OobleckEncoder") and a.latent_dim == 64


def test_back_conversion_reports_what_stable_audio_tools_cannot_express():
    cfg = compose_train("experiment=smoke")  # audioae's defaults: encodec stride (1, 2) ...
    cfg.trainer.schedule.joint = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sat = config_to_sat(cfg)
    lost = " | ".join(str(w.message) for w in caught if w.category is SATConversionWarning)
    assert "trainer.schedule.joint" in lost
    assert sat["model"]["encoder"]["type"] == "oobleck"
    assert sat["model"]["downsampling_ratio"] == 8


def test_sat_config_works_inside_a_hydra_app():
    """The inference tools may call sat_config while Hydra is initialised."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF), version_base=None):
        cfg = sat_config(load("dac_2048_32_vae"))
        assert cfg.encoder.d_model == 128
        assert compose("train").encoder.channels == 32  # the outer Hydra still works


def test_freeze_names_components():
    cfg = compose_train("experiment=smoke", "freeze=[encoder,decoder]")
    model = build_autoencoder(cfg)
    assert not any(
        p.requires_grad for p in [*model.encoder.parameters(), *model.decoder.parameters()]
    )
    with pytest.raises(ConfigError, match="freeze: unknown component 'decodr'"):
        build_autoencoder(compose_train("experiment=smoke", "freeze=[decodr]"))


def mono_to_stereo(force_input_mono: bool | None = True) -> dict:
    """small_oobleck_defaults as a mono-in, stereo-out model, the way stable-audio-tools trains
    one: stereo audio (audio_channels 2), the encoder fed its channel mean."""
    config = edit("small_oobleck_defaults", "model.in_channels", 1)
    config["model"]["out_channels"] = 2
    config["model"]["encoder"]["config"]["in_channels"] = 1
    if force_input_mono is not None:
        config["training"]["force_input_mono"] = force_input_mono
    return config


def test_force_input_mono_converts_a_mono_in_stereo_out_model():
    conversion = quiet_convert(mono_to_stereo())
    assert "in_channels=1" in conversion.overrides  # out_channels follows io_channels (2)
    cfg = conversion.cfg
    assert (cfg.in_channels, cfg.out_channels, cfg.data.channels) == (1, 2, 2)
    assert (cfg.discriminator.in_channels, cfg.loss.terms.spectral.channels) == (2, 2)
    # stable-audio-tools' layout of the stereo model, except the encoder's first convolution
    reference = json.loads((FIXTURES / "small_oobleck_defaults.keys.json").read_text())
    expected = reference["autoencoder"]["keys"]
    first = "encoder.layers.0.weight_v"
    expected[first] = [expected[first][0], 1, expected[first][2]]
    assert layout(build_model(cfg)) == expected
    with warnings.catch_warnings():
        warnings.simplefilter("error", SATConversionWarning)
        back = config_to_sat(cfg)
    assert back["audio_channels"] == 2 and back["training"]["force_input_mono"] is True
    assert (back["model"]["in_channels"], back["model"]["out_channels"]) == (1, 2)
    assert quiet_convert(back).overrides == conversion.overrides


@pytest.mark.parametrize(
    "config, expected",
    [
        (
            mono_to_stereo(force_input_mono=None),
            "audio_channels: 2 contradicts model.in_channels (default model.io_channels)=1: "
            "stable-audio-tools feeds the encoder the audio as loaded (1 = mono, else stereo); "
            "set training.force_input_mono: true for a mono-in model",
        ),
        (
            {**mono_to_stereo(), "audio_channels": 1},
            "audio_channels: 1 contradicts model.out_channels=2",
        ),
    ],
)
def test_channels_stable_audio_tools_cannot_train_are_refused(config, expected):
    assert expected in error_of(config)


def test_model_only_ignores_audio_channels_and_training():
    """What inference reads: audio_channels and training drive stable-audio-tools' training
    alone, so a mono-in model stated with audio_channels 2 and no force_input_mono builds."""
    config = mono_to_stereo(force_input_mono=None)
    config["training"]["teacher_model"] = {"model_type": "autoencoder"}  # unsupported: unread
    cfg = quiet_convert(config, model_only=True).cfg
    assert (cfg.in_channels, cfg.out_channels) == (1, 2)
    assert build_model(cfg).encoder.layers[0].weight_v.shape[1] == 1


def test_back_conversion_of_stereo_in_mono_out_warns():
    cfg = compose_train("experiment=smoke", "in_channels=2", "out_channels=1")
    with pytest.warns(SATConversionWarning, match="out_channels: 1 with in_channels=2"):
        sat = config_to_sat(cfg)
    assert sat["audio_channels"] == 2 and sat["training"]["force_input_mono"] is False
