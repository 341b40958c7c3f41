"""Safe weight reading (a malicious pickle is refused unexecuted), strict loading with a report,
fingerprints, weight-norm folding and the other inference rewrites."""

from __future__ import annotations

import builtins
import warnings

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from audioae.build import build_autoencoder
from audioae.errors import CheckpointError
from audioae.inference import (
    FrozenSnake,
    fold_weight_norm,
    load_strict,
    optimize_for_inference,
    read_weights,
    state_hash,
)
from conftest import compose_train
from inference.inference_helpers import one_thread, smoke_model  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


class Payload:
    """Unpickling this creates a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": Payload(marker)}, ckpt)
    with pytest.raises(CheckpointError) as err:
        read_weights(ckpt)
    assert not marker.exists()
    message = str(err.value)
    assert "refused" in message and "open" in message and "safetensors" in message
    assert "\n" not in message


def test_reads_state_dicts_in_every_safe_form(tmp_path):
    state = {"a.weight": torch.randn(3, 2), "a.bias": torch.zeros(3)}
    lightning = {"state_dict": state, "global_step": 5, "model_config": {"x": [1, 2]}}
    torch.save(lightning, tmp_path / "a.ckpt")
    torch.save(state, tmp_path / "b.pt")
    save_file(state, tmp_path / "c.safetensors")
    for name in ("a.ckpt", "b.pt", "c.safetensors"):
        got = read_weights(tmp_path / name)
        assert got.keys() == state.keys() and torch.equal(got["a.weight"], state["a.weight"])


def test_unreadable_files_are_one_line_errors(tmp_path):
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 16)
    for name in ("junk.ckpt", "junk.safetensors", "missing.ckpt"):
        with pytest.raises(CheckpointError) as err:
            read_weights(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)


def test_strict_loading_lists_every_mismatch():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    state = dict(model.state_dict())
    del state["1.bias"]
    state["2.weight"] = torch.zeros(1)
    state["0.weight"] = torch.zeros(5, 2)
    with pytest.raises(CheckpointError) as err:
        load_strict(model, state, "ckpt.safetensors")
    lines = str(err.value).splitlines()
    assert lines[0] == (
        "ckpt.safetensors: the weights do not fit the model config "
        "(1 missing, 1 unexpected, 1 shape keys):"
    )
    assert "  missing: 1.bias" in lines and "  unexpected: 2.weight" in lines
    shape = "  shape: 0.weight (5, 2) in the checkpoint, (3, 2) in the model"
    assert shape in lines


def test_codebook_flags_of_older_vector_quantize_load():
    """stable-audio-tools pins vector-quantize-pytorch 1.14, whose `initted` flags are (1,)."""
    model = smoke_model("bottleneck=rvq", fold=False)
    state = dict(model.state_dict())
    flags = [k for k in state if k.endswith("_codebook.initted")]
    assert flags and all(state[k].shape == () for k in flags)
    state.update({k: torch.tensor([False]) for k in flags})
    load_strict(model, state, "sat.ckpt")
    assert all(model.state_dict()[k].shape == () and not model.state_dict()[k] for k in flags)


def test_hash_depends_on_values_not_order():
    a = {"x": torch.arange(4.0), "y": torch.ones(2, dtype=torch.int64)}
    b = {"y": a["y"].clone(), "x": a["x"].clone()}
    assert state_hash(a) == state_hash(b)
    b["x"][0] = 1e-6
    assert state_hash(a) != state_hash(b)


def test_folding_weight_norm_keeps_outputs():
    model = smoke_model(fold=False)
    x = torch.randn(1, 2, 4096)
    with torch.no_grad():
        latents = model.encode(x, sample=False).latents
        audio = model.decode(latents)
    assert any(k.endswith("weight_g") for k in model.state_dict())
    folded = fold_weight_norm(model)
    assert folded == sum(k.endswith("weight_g") for k in smoke_model(fold=False).state_dict())
    assert not any(k.endswith(("weight_g", "weight_v")) for k in model.state_dict())
    with torch.no_grad():
        after = model.encode(x, sample=False).latents
        torch.testing.assert_close(after, latents, atol=1e-5, rtol=0)
        torch.testing.assert_close(model.decode(latents), audio, atol=1e-5, rtol=0)
    assert fold_weight_norm(model) == 0  # idempotent


def test_folding_skips_plain_modules_and_handles_parametrizations():
    # the reference's remove_weight_norm_from_model raises on the plain conv (its §11.24)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        hooked = nn.utils.weight_norm(nn.Conv1d(2, 3, 3))
    param = nn.utils.parametrizations.weight_norm(nn.Conv1d(3, 3, 3))
    net = nn.Sequential(hooked, nn.Conv1d(3, 3, 1), param, nn.Linear(3, 3))
    x = torch.randn(1, 2, 7)
    with torch.no_grad():
        before = net(x)
        assert fold_weight_norm(net) == 2
        torch.testing.assert_close(net(x), before, atol=1e-6, rtol=0)
    assert not nn.utils.parametrize.is_parametrized(net[2])


@pytest.mark.parametrize("experiment", ["smoke", "smoke_dac"])
def test_optimize_for_inference_keeps_outputs(experiment):
    torch.manual_seed(0)
    model = build_autoencoder(compose_train(f"experiment={experiment}")).eval()
    x = torch.randn(1, 2, 4096)
    with torch.no_grad():
        latents = model.encode(x, sample=False).latents
        audio = model.decode(latents)
    optimize_for_inference(model)
    assert sum(isinstance(m, FrozenSnake) for m in model.modules()) > 0
    assert not any(p.requires_grad for p in model.parameters())
    with torch.inference_mode():
        torch.testing.assert_close(
            model.encode(x, sample=False).latents, latents, atol=1e-5, rtol=0
        )
        torch.testing.assert_close(model.decode(latents), audio, atol=1e-5, rtol=0)
