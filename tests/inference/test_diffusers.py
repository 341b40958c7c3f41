"""Export to diffusers' AutoencoderOobleck and diffusers folders as CKPT (inference/diffusers.py):
equal outputs both ways, for several architectures; one-line refusals for what it cannot express.
Nothing downloads: diffusers models are built from configs."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from audioae.build import build_autoencoder
from audioae.errors import CheckpointError
from audioae.inference import load_model
from audioae.inference.diffusers import DiffusersExportError, oobleck_layout, to_diffusers
from conftest import compose_train, run_cli
from conftest import random_snake_model as random_model
from inference.inference_helpers import (  # noqa: F401
    one_thread,
    single_threaded_subprocesses,
    trained_run,
)

diffusers = pytest.importorskip("diffusers")
pytestmark = pytest.mark.usefixtures("one_thread")

ARCHITECTURES = {
    # smoke: 8 channels, latent 8: the encoder is widened to 16 (2 * latent_dim)
    "smoke": ("experiment=smoke",),
    "exact_width": ("experiment=smoke", "latent_dim=4"),
    "mono_odd_strides": (
        "experiment=smoke", "io_channels=1", "encoder.channels=6", "encoder.c_mults=[2,3]",
        "encoder.strides=[3,2]", "latent_dim=5", "sample_size=600",
    ),
    "narrow_decoder": ("experiment=smoke", "decoder.channels=4", "encoder.c_mults=[1,2,2]",
                       "encoder.strides=[2,2,2]", "sample_rate=22050"),
}  # fmt: skip


def audio_for(model, frames: int = 7, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, model.in_channels, frames * model.downsampling_ratio, generator=g) * 0.5


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def check_same(ours, theirs, x):
    """Our encode mean and decode against diffusers'; diffusers' decoder is shorter by one sample
    per odd stride (the transposed conv's padding), which ours pads back."""
    z = ours.encode(x, sample=False).latents
    close(theirs.encode(x).latent_dist.mean, z)
    raw = ours.decoder(ours.bottleneck.decode(z))  # before audioae pads the odd-stride samples
    close(theirs.decode(z).sample, raw)
    y = ours.decode(z)
    assert y.shape[-1] == z.shape[-1] * ours.downsampling_ratio
    assert torch.equal(y[..., : raw.shape[-1]], raw)
    return z, y


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_export_loads_in_diffusers_and_back_as_ckpt_with_equal_outputs(name, tmp_path):
    model, cfg = random_model(*ARCHITECTURES[name])
    config = to_diffusers(model, cfg.sample_rate, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json", "diffusion_pytorch_model.safetensors",
    ]  # fmt: skip
    theirs = diffusers.AutoencoderOobleck.from_pretrained(tmp_path).eval()
    assert theirs.sampling_rate == cfg.sample_rate == config["sampling_rate"]
    assert config["decoder_input_channels"] == cfg.latent_dim
    x = audio_for(model)
    z, y = check_same(model, theirs, x)
    back, back_cfg = load_model(tmp_path)  # the folder as CKPT
    assert back_cfg.sample_rate == cfg.sample_rate and back.latent_dim == cfg.latent_dim
    with torch.no_grad():
        close(back.encode(x, sample=False).latents, z)
        close(back.decode(z), y)


def test_folder_saved_by_diffusers_itself_loads_as_ckpt(tmp_path):
    torch.manual_seed(0)
    config = dict(
        encoder_hidden_size=12, downsampling_ratios=[2, 3], channel_multiples=[1, 2],
        decoder_channels=10, decoder_input_channels=6, audio_channels=2, sampling_rate=32000,
    )  # fmt: skip
    theirs = diffusers.AutoencoderOobleck(**config).eval()
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if name.endswith(("alpha", "beta")):
                p.normal_(0, 0.3)
    theirs.save_pretrained(tmp_path)
    ours, cfg = load_model(tmp_path / "diffusion_pytorch_model.safetensors")  # or the file
    assert (cfg.sample_rate, ours.downsampling_ratio, ours.latent_dim) == (32000, 6, 6)
    assert cfg.encoder.c_mults == [1, 2] and cfg.decoder.channels == 10
    check_same(ours, theirs, audio_for(ours))


def test_an_inconsistent_diffusers_config_is_refused_in_one_line(tmp_path):
    config = {"_class_name": "AutoencoderOobleck", "encoder_hidden_size": 10,
              "decoder_input_channels": 4, "downsampling_ratios": [2], "channel_multiples": [1],
              "decoder_channels": 8, "audio_channels": 2, "sampling_rate": 44100}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    save_file({"x": torch.zeros(1)}, tmp_path / "diffusion_pytorch_model.safetensors")
    with pytest.raises(CheckpointError, match="encoder_hidden_size=10 is not 2 \\* decoder_in"):
        load_model(tmp_path)


REFUSED = {
    "decoder.final_tanh=true": "final_tanh",
    "encoder.use_snake=false": "encoder.use_snake=false",
    "decoder.use_nearest_upsample=true": "use_nearest_upsample",
    "encoder.antialias_activation=true": "antialias",
    "soft_clip=true": "soft_clip",
    "bottleneck=fsq": "bottleneck FSQ",
    "bottleneck=rvq_vae": "bottleneck",
    "experiment=smoke_dac": "encoder DACEncoder",
    "pretransform=wavelet": "pretransform",
    "encoder.channels=32": "encoder.channels=32 > 2 * latent_dim=16",
    "in_channels=1": "in_channels=1 != out_channels=2",
    "decoder.strides=[4,2]": "decoder strides",
}


@pytest.mark.parametrize("override", REFUSED)
def test_what_diffusers_cannot_express_is_refused_in_one_line(override):
    overrides = [override] if override.startswith("experiment") else ["experiment=smoke", override]
    model = build_autoencoder(compose_train(*overrides))
    with pytest.raises(DiffusersExportError, match="AutoencoderOobleck cannot express") as e:
        oobleck_layout(model)
    assert REFUSED[override] in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow  # a training run and three commands
def test_cli_exports_a_trained_run_and_refuses_in_one_line(tmp_path_factory, tmp_path):
    run = trained_run(tmp_path_factory)
    out = tmp_path / "diffusers"
    with single_threaded_subprocesses():
        args = (str(run), "--format", "diffusers", "--out", str(out))
        run_cli("audioae-export", *args, cwd=tmp_path)
    model, _ = load_model(run)
    theirs = diffusers.AutoencoderOobleck.from_pretrained(out).eval()
    check_same(model, theirs, audio_for(model))
    exported, _ = load_model(out)
    x = audio_for(model)
    with torch.no_grad():
        close(exported.encode(x, sample=False).latents, model.encode(x, sample=False).latents)
    # an export of a model diffusers cannot express
    bad = tmp_path / "tanh"
    bad.mkdir()
    cfg = compose_train("experiment=smoke", "decoder.final_tanh=true")
    OmegaConf.save(cfg, bad / "config.yaml", resolve=True)
    save_file(build_autoencoder(cfg).state_dict(), bad / "model.safetensors")
    proc = run_cli(
        "audioae-export", str(bad), "--format", "diffusers", "--out", str(tmp_path / "x"),
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and not (tmp_path / "x").exists()
    assert proc.stderr.strip().splitlines() == [
        "audioae-export: diffusers' AutoencoderOobleck cannot express decoder.final_tanh=true"
    ]


@pytest.mark.slow
def test_default_model_config_exports_with_equal_outputs(tmp_path):
    model, cfg = random_model()  # conf/train.yaml as `make train` uses it
    to_diffusers(model, cfg.sample_rate, tmp_path)
    theirs = diffusers.AutoencoderOobleck.from_pretrained(tmp_path).eval()
    check_same(model, theirs, audio_for(model, frames=5))
    back, _ = load_model(tmp_path)
    x = audio_for(model, frames=5)
    with torch.no_grad():
        close(back.encode(x, sample=False).latents, model.encode(x, sample=False).latents)
