"""Autoencoder pretransform: a trained run, frozen, in front of another model."""

from __future__ import annotations

import shutil

import pytest
import torch

from audioae.build import build_autoencoder
from audioae.errors import CheckpointError, ConfigError
from audioae.inference import load_model
from audioae.inference.export import export
from audioae.inference.loading import autoencoder_pretransform
from conftest import compose_train, run_cli
from inference.inference_helpers import (  # noqa: F401
    one_thread,
    single_threaded_subprocesses,
    trained_run,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def inner(tmp_path_factory):
    return trained_run(tmp_path_factory)


def test_encode_decode_are_the_inner_model_scaled(inner):
    pre = autoencoder_pretransform(path=str(inner), scale=2.0, sample_rate=16000)
    model, _ = load_model(inner)
    assert (pre.io_channels, pre.encoded_channels, pre.downsampling_ratio) == (2, 8, 8)
    x = torch.randn(1, 2, 1024)
    with torch.no_grad():
        ref = model.encode(x, sample=False).latents
        torch.testing.assert_close(pre.encode(x), ref / 2)
        torch.testing.assert_close(pre.decode(ref / 2), model.decode(ref))
    assert not any(p.requires_grad for p in pre.parameters())
    pre.train()
    assert not pre.model.training  # a frozen model stays in inference mode


def test_outer_model_accounts_for_the_pretransform(inner):
    overrides = ("experiment=smoke", "pretransform=autoencoder", f"pretransform.path={inner}")
    cfg = compose_train(*overrides)
    model = build_autoencoder(cfg)
    assert model.downsampling_ratio == 64
    assert model.encoder.in_channels == 8  # the inner latent_dim
    assert any(k.startswith("pretransform.model.encoder.") for k in model.state_dict())
    x = torch.randn(2, 2, cfg.sample_size)
    y, result = model(x)
    assert y.shape == x.shape and result.latents.shape == (2, 8, cfg.sample_size // 64)
    y.pow(2).mean().backward()
    assert all(p.grad is None for p in model.pretransform.parameters())
    assert model.encoder.layers[0].weight_v.grad is not None


def test_training_reads_the_inner_checkpoint_once_and_the_ema_is_a_copy(inner, monkeypatch):
    from accelerate import Accelerator

    from audioae.inference import loading
    from audioae.train.loop import build_training

    loads = []
    real = loading.load_model
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    overrides = ("experiment=smoke", "pretransform=autoencoder", f"pretransform.path={inner}")
    cfg = compose_train(*overrides, "trainer.use_ema=true")
    training = build_training(cfg, Accelerator(cpu=True))
    assert len(loads) == 1
    online, averaged = training.gen.module.state_dict(), training.ema.model.state_dict()
    assert online.keys() == averaged.keys()
    for key, value in online.items():
        assert torch.equal(value, averaged[key]) and value.data_ptr() != averaged[key].data_ptr()


def test_configuration_errors(inner, tmp_path):
    with pytest.raises(ConfigError, match="exactly one"):
        autoencoder_pretransform()
    with pytest.raises(ConfigError, match="16000 Hz but sample_rate=44100"):
        autoencoder_pretransform(path=str(inner), sample_rate=44100)
    with pytest.raises(CheckpointError, match="no such file"):
        autoencoder_pretransform(path=str(tmp_path / "nowhere"))


@pytest.mark.slow
def test_train_on_top_then_export_without_the_inner_run(inner, tmp_path):
    inner_copy = tmp_path / "inner"
    shutil.copytree(inner, inner_copy)
    outer = tmp_path / "outer"
    with single_threaded_subprocesses():
        run_cli(
            "audioae-train", "experiment=smoke", "pretransform=autoencoder",
            f"pretransform.path={inner_copy}", "pretransform.scale=0.5", f"hydra.run.dir={outer}",
            "trainer.max_steps=1", "trainer.checkpoint_every=1", cwd=tmp_path,
        )  # fmt: skip
    model, cfg = load_model(outer)
    assert cfg.pretransform.path is None and cfg.pretransform.config.latent_dim == 8
    export(outer, tmp_path / "export")
    shutil.rmtree(inner_copy)  # the export must not need it
    with pytest.raises(CheckpointError, match=r"pretransform\.path"):
        load_model(outer)
    exported, _ = load_model(tmp_path / "export")
    x = torch.randn(1, 2, 2048)
    with torch.no_grad():
        a, b = exported.encode(x, sample=False).latents, model.encode(x, sample=False).latents
    torch.testing.assert_close(a, b, rtol=0, atol=0)
