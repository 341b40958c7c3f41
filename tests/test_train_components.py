"""Every encoder with every bottleneck: gradients reach the encoder, and `audioae-train` runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from audioae.build import build_autoencoder
from conftest import compose_train, options, run_cli

# the smoke preset of each encoder family
PRESETS = {"oobleck": "smoke", "dac": "smoke_dac", "seanet": "smoke_seanet"}
# keep k-means initialisation cheap in the in-process tests
FAST = {"rvq": ["bottleneck.kmeans_iters=2"], "rvq_vae": ["bottleneck.kmeans_iters=2"]}


def test_every_encoder_has_a_smoke_preset():
    assert set(PRESETS) == set(options("encoder"))


@pytest.mark.parametrize("bottleneck", options("bottleneck"))
@pytest.mark.parametrize("encoder", sorted(PRESETS))
def test_gradients_reach_the_encoder_through_every_bottleneck(encoder, bottleneck):
    cfg = compose_train(f"experiment={PRESETS[encoder]}", f"bottleneck={bottleneck}",
                        *FAST.get(bottleneck, []))  # fmt: skip
    torch.manual_seed(0)
    model = build_autoencoder(cfg).train()
    audio = torch.randn(2, cfg.in_channels, cfg.sample_size)
    recon, result = model(audio)
    assert recon.shape == audio.shape
    assert result.latents.shape == (2, cfg.latent_dim, cfg.sample_size // model.downsampling_ratio)
    recon.square().mean().backward()  # reconstruction only: quantizers must pass gradients on
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    if model.is_discrete:
        codes = result.codes
        assert codes.dtype == torch.int64 and codes.dim() == 3
        assert codes.shape[::2] == (2, result.latents.shape[-1])
        assert codes.shape[1] == model.bottleneck.num_quantizers


def _scalars(run: Path) -> dict[str, dict[int, float]]:
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


@pytest.mark.slow
def test_two_training_steps_for_every_bottleneck(tmp_path):
    names = options("bottleneck")
    sweep = tmp_path / "sweep"
    run_cli(
        "audioae-train", "-m", "experiment=smoke", f"bottleneck={','.join(names)}",
        "trainer.max_steps=2", f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    done = set()
    for job in range(len(names)):
        run = sweep / str(job)
        assert (run / "checkpoints/step_00000002/model.safetensors").exists()
        node = OmegaConf.load(run / "config.yaml").bottleneck
        bottleneck = instantiate(node)
        logged = _scalars(run)
        for name in bottleneck.loss_names:  # every loss the bottleneck emits is logged
            assert f"loss/{name}" in logged, (node._target_, name)
        if bottleneck.is_discrete:  # codebook usage and perplexity, per codebook
            size = bottleneck.codebook_size
            for q in range(bottleneck.num_quantizers):
                usage = logged[f"bottleneck/usage/q{q}"]
                perplexity = logged[f"bottleneck/perplexity/q{q}"]
                assert usage.keys() == perplexity.keys() and usage, node._target_
                for step, used in usage.items():
                    # exp(entropy) of a histogram: at most the number of codes used, and 1
                    # exactly when one code is used (positive entropy otherwise)
                    codes_used, value = used * size, perplexity[step]
                    assert value <= codes_used * (1 + 1e-5), (node._target_, q, step)
                    if codes_used < 1.5:
                        assert value == pytest.approx(1.0), (node._target_, q, step)
                    else:
                        assert value > 1.0, (node._target_, q, step)
        done.add(node._target_)
    assert len(done) == len(names)


@pytest.mark.slow
def test_two_training_steps_for_every_encoder(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli(
        "audioae-train", "-m", "experiment=smoke_dac,smoke_seanet", "trainer.max_steps=2",
        f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    first_keys = {
        "0": "encoder.encoder.block.0.weight_v",
        "1": "encoder.model.0.conv.conv.weight_v",
    }
    for job, key in first_keys.items():
        weights = load_file(sweep / job / "checkpoints/step_00000002/model.safetensors")
        assert key in weights
        assert "loss/kl" in _scalars(sweep / job)
