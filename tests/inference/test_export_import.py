"""audioae-export, and loading every kind of checkpoint: run dir, checkpoint, export, and
stable-audio-tools layouts (unwrapped, Lightning training checkpoint with EMA), strictly."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from audioae.convert import config_to_sat
from audioae.errors import CheckpointError
from audioae.inference import load_model, read_weights, state_hash
from audioae.inference.export import export
from conftest import run_cli
from inference.inference_helpers import (  # noqa: F401
    one_thread,
    single_threaded_subprocesses,
    trained_run,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory)


def outputs(model):
    torch.manual_seed(0)
    x = torch.randn(1, 2, 4096)
    with torch.no_grad():
        latents = model.encode(x, sample=False).latents
        return latents, model.decode(latents)


def same_model(a, b):
    assert a.state_dict().keys() == b.state_dict().keys()
    assert state_hash(a.state_dict()) == state_hash(b.state_dict())
    for x, y in zip(outputs(a), outputs(b)):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def newest(run):
    return sorted((run / "checkpoints").iterdir())[-1]


def test_run_dir_uses_the_newest_checkpoint_and_its_ema(run):
    model, cfg = load_model(run)
    ckpt = newest(run)
    ema = load_file(ckpt / "ema.safetensors")
    ema = {k.removeprefix("model."): v for k, v in ema.items() if k != "updates"}
    assert state_hash(model.state_dict()) == state_hash(ema)
    online, _ = load_model(run, ema=False)
    assert state_hash(online.state_dict()) == state_hash(load_file(ckpt / "model.safetensors"))
    assert state_hash(online.state_dict()) != state_hash(model.state_dict())
    assert cfg.sample_rate == 16000 and not model.training
    same_model(model, load_model(ckpt)[0])  # the checkpoint folder itself
    same_model(online, load_model(ckpt / "model.safetensors")[0])  # a weights file + config.yaml


def test_export_then_import_gives_identical_outputs(run, tmp_path):
    out = tmp_path / "export"
    with single_threaded_subprocesses():
        run_cli("audioae-export", str(run), "--out", str(out), "--sat", cwd=tmp_path)
    written = sorted(p.name for p in out.iterdir())
    assert written == ["config.yaml", "model.safetensors", "model_config.json"]
    model, _ = load_model(run)
    exported, cfg = load_model(out)
    same_model(model, exported)
    assert OmegaConf.to_container(cfg) == OmegaConf.to_container(load_model(run)[1])
    # the stable-audio-tools view of the same folder: model_config.json + model.safetensors
    sat = tmp_path / "sat"
    sat.mkdir()
    for name in ("model_config.json", "model.safetensors"):
        shutil.copy(out / name, sat / name)
    imported, sat_cfg = load_model(sat)
    same_model(model, imported)
    assert json.loads((sat / "model_config.json").read_text())["model"]["latent_dim"] == 8
    assert sat_cfg.encoder.channels == 8
    # a second export refuses to overwrite; --no-ema exports the online weights
    with pytest.raises(Exception, match="--force"):
        export(run, out)
    export(run, out, ema=False, force=True)
    assert not (out / "model_config.json").exists()
    same_model(load_model(out)[0], load_model(run, ema=False)[0])


def sat_folder(tmp_path, cfg, payload, name="model.ckpt"):
    folder = tmp_path / name.split(".")[0]
    folder.mkdir()
    (folder / "model_config.json").write_text(json.dumps(config_to_sat(cfg)))
    if name.endswith(".ckpt"):
        torch.save(payload, folder / name)
    else:
        save_file(payload, folder / name)
    return folder


def test_reference_training_checkpoint_imports(run, tmp_path):
    model, cfg = load_model(run)
    online, _ = load_model(run, ema=False)
    state = {f"autoencoder.{k}": v for k, v in online.state_dict().items()}
    state |= {f"autoencoder_ema.ema_model.{k}": v for k, v in model.state_dict().items()}
    state |= {f"autoencoder_ema.online_model.{k}": v for k, v in online.state_dict().items()}
    state |= {
        "discriminator.convs.0.weight": torch.zeros(3),
        "autoencoder_ema.step": torch.ones(()),
    }
    lightning = {"state_dict": state, "global_step": 2, "epoch": 0,
                 "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]}],
                 "model_config": config_to_sat(cfg)}  # fmt: skip
    folder = sat_folder(tmp_path, cfg, lightning)
    same_model(model, load_model(folder)[0])  # EMA preferred, as unwrap_model.py exports it
    same_model(online, load_model(folder, ema=False)[0])
    # an unwrapped export: {"state_dict": autoencoder keys} and plain safetensors
    unwrapped = sat_folder(tmp_path, cfg, {"state_dict": model.state_dict()}, "unwrapped.ckpt")
    same_model(model, load_model(unwrapped / "unwrapped.ckpt")[0])
    plain = {k: v.contiguous() for k, v in model.state_dict().items()}
    same_model(model, load_model(sat_folder(tmp_path, cfg, plain, "plain.safetensors"))[0])


def test_mismatched_weights_are_listed(run, tmp_path):
    model, cfg = load_model(run)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    del state["decoder.layers.0.bias"]
    state["bottleneck.extra"] = torch.zeros(1)
    folder = sat_folder(tmp_path, cfg, state, "model.safetensors")
    with pytest.raises(CheckpointError) as err:
        load_model(folder)
    lines = str(err.value).splitlines()
    assert "(1 missing, 1 unexpected keys)" in lines[0]
    assert "  missing: decoder.layers.0.bias" in lines and "  unexpected: bottleneck.extra" in lines


def test_sat_pqmf_checkpoints_are_refused(tmp_path):
    from audioae.inference.sat import autoencoder_state

    with pytest.raises(CheckpointError, match="PQMF"):
        autoencoder_state({"autoencoder.pretransform.pqmf.filter_bank": torch.zeros(2)})


def test_read_weights_refuses_unsafe_training_checkpoints(tmp_path):
    # e.g. Lightning hyper_parameters holding an object: refused, whatever the object
    ckpt = {"state_dict": {"w": torch.zeros(1)}, "hyper_parameters": argparse.Namespace(lr=1e-4)}
    torch.save(ckpt, tmp_path / "x.ckpt")
    with pytest.raises(CheckpointError, match=r"refused.*argparse\.Namespace"):
        read_weights(tmp_path / "x.ckpt")
