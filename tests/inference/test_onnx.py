"""ONNX export (inference/onnx.py): onnxruntime on the CPU gives audioae's outputs within 1e-4
relative, at lengths other than the traced one and not multiples of the ratio; codes in and out
for discrete bottlenecks; a one-line refusal where tracing froze a shape."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audioae.inference import load_model
from audioae.inference.onnx import OnnxExportError, to_onnx
from conftest import random_snake_model as random_model
from conftest import run_cli
from inference.inference_helpers import (  # noqa: F401
    one_thread,
    single_threaded_subprocesses,
    trained_run,
)

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_thread")


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def relative(got: np.ndarray, want: torch.Tensor) -> float:
    assert got.shape == tuple(want.shape)
    return float(np.abs(got - want.numpy()).max() / np.abs(want.numpy()).max())


@torch.no_grad()
def check_graphs(model, out, lengths):
    """The graphs against the model (as audioae-encode runs it: zero-padded to the ratio)."""
    enc, dec = session(out / "encoder.onnx"), session(out / "decoder.onnx")
    ratio = model.downsampling_ratio
    for length in lengths:
        audio = torch.randn(2, model.in_channels, length) * 0.5
        result = model.encode(F.pad(audio, (0, -length % ratio)), sample=False)
        got = enc.run(None, {"audio": audio.numpy()})
        assert relative(got[0], result.latents) < 1e-4
        assert got[0].shape[-1] == -(-length // ratio)
        want = model.decode(result.latents)
        assert relative(dec.run(None, {"latents": result.latents.numpy()})[0], want) < 1e-4
        if model.is_discrete:
            assert (got[1] == result.codes.numpy()).all()
            codes = session(out / "codes_decoder.onnx").run(None, {"codes": got[1]})[0]
            assert relative(codes, want) < 1e-4


@pytest.mark.parametrize(
    "overrides",
    [
        ("experiment=smoke",),
        pytest.param(
            ("experiment=smoke", "io_channels=1", "encoder.strides=[3,2]", "sample_size=600"),
            marks=pytest.mark.slow,
        ),
        pytest.param(("experiment=smoke", "bottleneck=fsq"), marks=pytest.mark.slow),
    ],
    ids=["vae", "mono_odd_strides", "fsq_codes"],
)
def test_onnxruntime_matches_audioae_at_several_lengths(overrides, tmp_path):
    model, cfg = random_model(*overrides)
    config = to_onnx(copy.deepcopy(model), cfg.sample_rate, tmp_path)
    r = model.downsampling_ratio
    check_graphs(model, tmp_path, [3 * r, 10 * r + 1, 17 * r - 1, 1000])
    written = json.loads((tmp_path / "onnx_config.json").read_text())
    assert written == config and written["opset"] == 17
    assert (written["sample_rate"], written["downsampling_ratio"]) == (cfg.sample_rate, r)
    assert (written["latent_dim"], written["in_channels"]) == (cfg.latent_dim, cfg.in_channels)
    assert written["encoder"]["outputs"] == (
        ["latents", "codes"] if model.is_discrete else ["latents"]
    )
    assert (tmp_path / "codes_decoder.onnx").exists() == model.is_discrete


@pytest.mark.slow
def test_a_graph_that_fails_at_other_lengths_is_refused(tmp_path):
    # vector-quantize-pytorch's index lookup reshapes to the traced length
    model, cfg = random_model("experiment=smoke", "bottleneck=rvq")
    with pytest.raises(OnnxExportError, match=r"codes_decoder\.onnx: fails at 3 time steps"):
        to_onnx(model, cfg.sample_rate, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # no half export left behind


@pytest.mark.slow  # a training run and a command
def test_cli_exports_a_trained_run(tmp_path_factory, tmp_path):
    run = trained_run(tmp_path_factory)
    with single_threaded_subprocesses():
        run_cli("audioae-export", str(run), "--format", "onnx", "-o", str(tmp_path), cwd=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "decoder.onnx", "encoder.onnx", "onnx_config.json",
    ]  # fmt: skip
    model, _ = load_model(run)
    check_graphs(model, tmp_path, [2048, 3001])


@pytest.mark.slow
def test_default_model_config(tmp_path):
    model, cfg = random_model()  # conf/train.yaml as `make train` uses it
    to_onnx(copy.deepcopy(model), cfg.sample_rate, tmp_path)
    check_graphs(model, tmp_path, [4 * 256, 9 * 256 + 7])
