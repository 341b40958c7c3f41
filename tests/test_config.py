"""Every option in conf/ and every experiment composes and instantiates."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from audioae.build import build_autoencoder
from audioae.errors import ConfigError
from conftest import CONF, EXPERIMENTS, compose_train, options

GROUPS = ["encoder", "decoder", "bottleneck", "loss", "data", "optim", "trainer"]


def small(*overrides: str):
    """Smoke sizes plus the given overrides."""
    return compose_train("experiment=smoke", *overrides)


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_has_options(group):
    assert options(group), f"conf/{group} is empty"


@pytest.mark.parametrize("name", options("bottleneck"))
def test_bottleneck_options_build_a_model(name):
    cfg = small(f"bottleneck={name}")
    model = build_autoencoder(cfg)
    x = torch.randn(2, cfg.in_channels, cfg.sample_size)
    y, result = model(x)
    assert y.shape == x.shape
    assert result.latents.shape == (2, cfg.latent_dim, cfg.sample_size // model.downsampling_ratio)


@pytest.mark.parametrize("name", options("encoder"))
def test_encoder_option_selects_matching_decoder(name):
    cfg = compose_train(f"encoder={name}")
    assert cfg.decoder._target_.rsplit(".", 1)[0] == cfg.encoder._target_.rsplit(".", 1)[0]


@pytest.mark.parametrize("name", options("loss"))
def test_loss_options_instantiate(name):
    cfg = small(f"loss={name}")
    for term in cfg.loss.terms.values():
        instantiate(term)


@pytest.mark.parametrize("name", options("optim"))
def test_optim_options_instantiate(name):
    cfg = small(f"optim={name}")
    params = [torch.nn.Parameter(torch.zeros(3))]
    for net in cfg.optim.values():
        opt = instantiate(net.optimizer)(params)
        assert isinstance(opt, torch.optim.Optimizer)


def test_data_synthetic_instantiates():
    cfg = small("data=synthetic")
    item = instantiate(cfg.data)[0]
    assert item.shape == (cfg.in_channels, cfg.sample_size)


# Downsampling ratios by hand: the product of the strides in each preset, and the
# `downsampling_ratio` of the stable-audio-tools configs they were converted from.
RATIOS = {
    "smoke": 2 * 4,
    "smoke_dac": 2 * 4,
    "smoke_seanet": 4 * 2,
    "stable_audio_2_0_vae": 2 * 4 * 4 * 8 * 8,  # 2048
    "stable_audio_1_0_vae": 4 * 4 * 8 * 8,  # 1024
    "dac_2048_32_vae": 4 * 8 * 8 * 8,  # 2048
    "encodec_musicgen_rvq": 8 * 5 * 4 * 4,  # 640
    "sat_recipe": 2 * 4 * 4 * 8 * 8,  # stable_audio_2_0_vae's networks, narrower
    "recipe": 2 * 4 * 4 * 8 * 8,
    "stable_audio_2_0_vae_recipe": 2 * 4 * 4 * 8 * 8,
}


def test_every_experiment_has_a_known_ratio():
    assert sorted(RATIOS) == sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(RATIOS))
def test_every_experiment_composes_and_builds(name):
    text = (EXPERIMENTS / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_"), "experiments are global presets"
    cfg = compose_train(f"experiment={name}")
    with torch.device("meta"):
        model = build_autoencoder(cfg)
        # the networks' own strides (meta tensors: shapes only; decode() would fit the length)
        encoded = model.pre_bottleneck(torch.empty(1, cfg.in_channels, 3 * RATIOS[name]))
        audio = model.decoder(model.bottleneck.decode(torch.empty(1, cfg.latent_dim, 3)))
    assert model.downsampling_ratio == RATIOS[name]
    assert encoded.shape[-1] == 3 and audio.shape == (1, cfg.out_channels, 3 * RATIOS[name])


def test_conf_is_the_shipped_tree():
    assert (CONF / "train.yaml").exists()
    assert (CONF / "experiment" / "smoke.yaml").exists()


def test_derived_widths_and_ratio():
    cfg = small("bottleneck=vae", "latent_dim=6", "encoder.strides=[2,3]", "sample_size=600")
    model = build_autoencoder(cfg)
    assert model.downsampling_ratio == 6
    assert model.encoder.latent_dim == 12  # a VAE needs 2 * latent_dim
    assert model.decoder.latent_dim == 6


@pytest.mark.parametrize(
    "overrides, keys",
    [
        (["+encoder.latent_dim=5"], ["encoder.latent_dim"]),
        (["downsampling_ratio=4"], ["downsampling_ratio", "encoder.strides"]),
        (["sample_size=2047"], ["sample_size"]),
        (["decoder.strides=[4,4]"], ["decoder.strides", "encoder.strides"]),
        (["+encoder.chanels=3"], ["encoder", "chanels"]),
        (["+bottleneck.loss_weights.mmd=1"], ["bottleneck.loss_weights", "mmd"]),
    ],
)
def test_contradictions_fail_naming_keys(overrides, keys):
    cfg = small(*overrides)
    with pytest.raises(ConfigError) as err:
        build_autoencoder(cfg)
    message = str(err.value)
    assert "\n" not in message
    for key in keys:
        assert key in message
