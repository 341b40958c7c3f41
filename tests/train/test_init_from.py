"""init_from=PATH: a fresh run (step 0, new folder, fresh optimizers) from trained weights, from
every kind of checkpoint, strictly or not; with freeze=[encoder,bottleneck] only the decoder
changes (train/init_from.py)."""

from __future__ import annotations

import json
import logging
import warnings

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file

from audioae.build import build_autoencoder
from audioae.convert import config_to_sat
from audioae.errors import CheckpointError, ConfigError
from audioae.inference import load_model
from audioae.inference.export import export
from audioae.inference.loading import read_config
from audioae.inference.sat import autoencoder_state
from audioae.train.init_from import InitFromError
from audioae.train.setup import build_training
from conftest import compose_train, run_cli
from inference.inference_helpers import (  # noqa: F401
    one_thread,
    single_threaded_subprocesses,
    trained_run,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SMOKE = "experiment=smoke"
FROZEN = ("encoder.", "bottleneck.")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "vae"
    export(run, out)
    return out


def sat_diffusion(src, folder, lightning: bool = False):
    """A stable-audio-tools latent diffusion checkpoint around the model at `src`: its
    autoencoder under pretransform.model.* (diffusion.pretransform.model.* in a Lightning
    training checkpoint), beside other diffusion keys; model_config.json names it."""
    model, cfg = load_model(src, ema=True)
    prefix = "diffusion.pretransform.model." if lightning else "pretransform.model."
    state = {prefix + k: v.contiguous() for k, v in model.state_dict().items()}
    head = "diffusion." if lightning else ""
    state[head + "model.model.transformer.layers.0.weight"] = torch.randn(4, 4)
    state[head + "conditioner.conditioners.prompt.proj_out.weight"] = torch.randn(4, 2)
    state["diffusion_ema.ema_model.transformer.layers.0.weight"] = torch.randn(4, 4)
    ae = config_to_sat(cfg)
    config = {
        "model_type": "diffusion_cond",
        "sample_rate": ae["sample_rate"],
        "sample_size": 65536,
        "audio_channels": ae["audio_channels"],
        "model": {
            "pretransform": {"type": "autoencoder", "iterate_batch": True, "config": ae["model"]},
            "conditioning": {"configs": [{"id": "prompt", "type": "t5"}]},
            "diffusion": {"type": "dit", "config": {"io_channels": ae["model"]["latent_dim"]}},
            "io_channels": ae["model"]["latent_dim"],
        },
    }
    folder.mkdir(parents=True)
    (folder / "model_config.json").write_text(json.dumps(config))
    if lightning:
        torch.save({"state_dict": state}, folder / "model.ckpt")
    else:
        save_file(state, folder / "model.safetensors")
    return folder


def fresh(*overrides: str, fresh: bool = True):
    cfg = compose_train(SMOKE, *overrides)
    torch.manual_seed(1)  # another initialisation than the source's
    return build_training(cfg, Accelerator(cpu=True), fresh=fresh)


def reconstruct(model):
    torch.manual_seed(0)
    x = torch.randn(1, 2, 4096)
    model.eval()
    with torch.no_grad():
        latents = model.encode(x, sample=False).latents
        return latents, model.decode(latents)


def test_step_0_is_the_export_bitwise_and_so_is_the_ema(exported):
    training = fresh(f"init_from={exported}", "trainer.use_ema=true")
    reference, _ = load_model(exported)
    for a, b in zip(reconstruct(training.gen.module), reconstruct(reference), strict=True):
        assert torch.equal(a, b)
    ema = training.ema.model.state_dict()
    for key, value in reference.state_dict().items():
        assert torch.equal(ema[key], value), key
    assert int(training.ema.updates) == 0  # its first update copies the online weights


def test_ema_or_online_weights_of_the_source(run):
    ema, _ = load_model(run, ema=True)
    online, _ = load_model(run, ema=False)
    assert not torch.equal(ema.decoder.layers[0].weight_v, online.decoder.layers[0].weight_v)
    for flag, reference in (("true", ema), ("false", online)):
        model = fresh(f"init_from={run}", f"init_from_ema={flag}").gen.module
        for key, value in reference.state_dict().items():
            assert torch.equal(model.state_dict()[key], value), (flag, key)


def test_strict_failure_is_one_error_naming_the_keys(exported):
    with pytest.raises(InitFromError) as e:
        fresh(f"init_from={exported}", "encoder.channels=16")
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"init_from={exported}: ")
    assert "(152 shape keys)" in message and "(140 more)" in message
    assert "decoder.layers.0.weight_g (16, 1, 1) in the checkpoint, (32, 1, 1)" in message
    assert "init_from_strict=false" in message
    listed = r"missing: decoder.layers.3.layers.0.alpha, .*; unexpected: decoder.layers.3.alpha, "
    with pytest.raises(InitFromError, match=listed):
        fresh(f"init_from={exported}", "encoder.c_mults=[1,2,4]", "encoder.strides=[2,2,2]")


def test_non_strict_loads_what_fits_and_says_what_not(exported, caplog):
    reference = load_file(exported / "model.safetensors")
    with caplog.at_level(logging.WARNING, logger="audioae.train.init_from"):
        model = fresh(
            f"init_from={exported}", "init_from_strict=false", "decoder.channels=16"
        ).gen.module
    state = model.state_dict()
    same = [k for k in state if k in reference and torch.equal(state[k], reference[k])]
    shaped = [k for k in state if k in reference and state[k].shape != reference[k].shape]
    assert all(k.startswith("decoder.") for k in shaped) and len(shaped) > 5
    assert len(same) + len(shaped) == len(state) == len(reference)
    assert all(torch.equal(state[k], reference[k]) for k in state if k.startswith(FROZEN))
    (differs, warning) = [r.getMessage() for r in caplog.records]
    assert "model differs from the source's at decoder.channels (8 -> 16)" in differs
    assert f"loaded {len(same)} of {len(state)} tensors" in warning
    assert f"{len(shaped)} shape keys" in warning and "decoder.layers.0.weight_v" in warning


def test_a_frozen_part_must_load_even_when_not_strict(exported):
    with pytest.raises(InitFromError, match=r"freeze=\['encoder'\].*encoder do not all fit"):
        fresh(
            f"init_from={exported}",
            "init_from_strict=false",
            "encoder.channels=16",
            "freeze=[encoder]",
        )


@pytest.mark.parametrize("lightning", [False, True])
def test_stable_audio_tools_diffusion_checkpoint_gives_its_autoencoder(
    exported, tmp_path, lightning
):
    folder = sat_diffusion(exported, tmp_path / "sao", lightning)
    reference, _ = load_model(exported)
    loaded, cfg = load_model(folder)  # what audioae-encode reads
    assert cfg.latent_dim == 8 and cfg.sample_size == 65536
    model = fresh(f"init_from={folder}").gen.module
    for candidate in (loaded, model):
        for a, b in zip(reconstruct(candidate), reconstruct(reference), strict=True):
            assert torch.equal(a, b)


def test_diffusion_prefix_is_taken_only_without_top_level_autoencoder_keys():
    own = {"encoder.w": torch.zeros(1), "pretransform.model.encoder.w": torch.ones(1)}
    assert autoencoder_state(own) == own  # an autoencoder with an autoencoder pretransform
    diffusion = {"pretransform.model.encoder.w": torch.ones(1), "model.model.x": torch.ones(2)}
    assert autoencoder_state(diffusion).keys() == {"encoder.w"}


def test_a_diffusion_config_without_an_autoencoder_is_one_error(tmp_path):
    folder = tmp_path / "diffusion"
    folder.mkdir()
    config = {"model_type": "diffusion_uncond", "sample_rate": 16000, "model": {}}
    (folder / "model_config.json").write_text(json.dumps(config))
    save_file({"model.x": torch.zeros(1)}, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match="has no autoencoder"):
        read_config(folder)


def test_resume_wins_init_from_applies_to_a_fresh_run_only(tmp_path):
    missing = tmp_path / "gone"
    fresh(f"init_from={missing}", fresh=False)  # resuming: never read
    with pytest.raises(CheckpointError, match=r"init_from: .*gone: no such file"):
        fresh(f"init_from={missing}")
    with pytest.raises(ConfigError, match="init_discriminator=true needs init_from"):
        fresh("init_discriminator=true")


def test_frozen_parts_stay_in_inference_mode_and_their_buffers_unchanged():
    cfg = compose_train(
        SMOKE, "bottleneck=rvq", "bottleneck.codebook_size=16", "bottleneck.num_quantizers=2"
    )
    model = build_autoencoder(cfg).train()
    x = torch.randn(2, 2, cfg.sample_size)
    model(x)  # k-means initialises the codebooks: now it is like a loaded model
    for name in ("encoder", "bottleneck"):
        model.freeze(name)
    model.train()
    assert model.training and model.decoder.training
    assert not model.encoder.training and not model.bottleneck.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model(x)  # a training-mode forward: RVQ's EMA codebooks would move
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.slow
def test_discriminator_from_a_training_checkpoint(tmp_path_factory, tmp_path):
    gan = trained_run(tmp_path_factory, "loss=mrstft_gan")
    ckpt = sorted((gan / "checkpoints").iterdir())[-1]
    saved = load_file(ckpt / "discriminator.safetensors")
    training = fresh("loss=mrstft_gan", f"init_from={gan}", "init_discriminator=true")
    for key, value in training.dis.module.state_dict().items():
        assert torch.equal(value, saved[key]), key
    # stable-audio-tools' Lightning checkpoint: discriminator.* beside autoencoder.*
    model, cfg = load_model(gan)
    state = {f"autoencoder.{k}": v for k, v in model.state_dict().items()}
    state.update({f"discriminator.{k}": v for k, v in saved.items()})
    folder = tmp_path / "sat"
    folder.mkdir()
    torch.save({"state_dict": state}, folder / "model.ckpt")
    with warnings.catch_warnings():  # the discriminator's options that SAT lacks: not needed
        warnings.simplefilter("ignore")
        (folder / "model_config.json").write_text(json.dumps(config_to_sat(cfg)))
    training = fresh("loss=mrstft_gan", f"init_from={folder}", "init_discriminator=true")
    for key, value in training.dis.module.state_dict().items():
        assert torch.equal(value, saved[key]), key
    export(gan, tmp_path / "export")
    with pytest.raises(InitFromError, match=r"no discriminator weights.*an export does not"):
        fresh("loss=mrstft_gan", f"init_from={tmp_path / 'export'}", "init_discriminator=true")
    with pytest.raises(ConfigError, match="no discriminator"):
        fresh(f"init_from={gan}", "init_discriminator=true")


@pytest.mark.slow
def test_decoder_only_fine_tune_keeps_encoder_bottleneck_and_latents_bitwise(exported, tmp_path):
    """The real entry point, 4 steps, EMA on, AdamW with weight decay: a new run folder from
    step 0 whose encoder and bottleneck (online and EMA) and latents are the export's."""
    new = tmp_path / "finetune"
    with single_threaded_subprocesses():
        run_cli(
            "audioae-train",
            SMOKE,
            f"init_from={exported}",
            "freeze=[encoder,bottleneck]",
            "trainer.max_steps=4",
            "trainer.use_ema=true",
            "trainer.schedule.encoder_freeze_on_warmup=true",
            "trainer.schedule.warmup_steps=2",
            f"hydra.run.dir={new}",
            cwd=tmp_path,
        )
    assert sorted(p.name for p in (new / "checkpoints").iterdir()) == [
        "step_00000002",
        "step_00000004",
    ]
    ckpt = new / "checkpoints" / "step_00000004"
    assert torch.load(ckpt / "state.pt", weights_only=True)["loop"]["step"] == 4
    source = load_file(exported / "model.safetensors")
    online = load_file(ckpt / "model.safetensors")
    ema = {k.removeprefix("model."): v for k, v in load_file(ckpt / "ema.safetensors").items()}
    for weights in (online, ema):
        for key, value in source.items():
            if key.startswith(FROZEN):
                assert torch.equal(weights[key], value), key
        assert any(
            not torch.equal(weights[k], v) for k, v in source.items() if k.startswith("decoder.")
        )
    tuned, _ = load_model(new)  # its EMA weights, as audioae-encode reads them
    reference, _ = load_model(exported)
    a, b = reconstruct(tuned), reconstruct(reference)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])


@pytest.mark.slow
def test_the_command_reports_a_mismatch_in_one_line_and_writes_no_checkpoint(exported, tmp_path):
    new = tmp_path / "wrong"
    with single_threaded_subprocesses():
        proc = run_cli(
            "audioae-train",
            SMOKE,
            f"init_from={exported}",
            "encoder.channels=16",
            f"hydra.run.dir={new}",
            cwd=tmp_path,
            check=False,
        )
    assert proc.returncode == 2
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("audioae-train:")]
    assert line.startswith(f"audioae-train: init_from={exported}: the weights do not fit")
    assert "(152 shape keys)" in line
    assert not (new / "checkpoints").exists()
