"""CUDA: mixed-precision training through `audioae-train`, and CPU/GPU agreement of the model
and of chunked inference. Skipped on machines without CUDA (CI); run with `pytest -m gpu`."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from audioae.inference import decode_long, encode_long, optimize_for_inference
from conftest import run_cli, scalars
from inference.inference_helpers import smoke_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.fixture
def exact_fp32():
    """Full float32 convolutions and matmuls on the GPU (no TF32) for CPU comparisons."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.parametrize(
    "precision,joint", [("no", False), ("bf16", False), ("fp16", False), ("fp16", True)]
)
def test_gan_training_on_cuda(tmp_path, precision, joint):
    run = tmp_path / "run"
    run_cli(
        "audioae-train",
        "experiment=smoke",
        "loss=mrstft_gan",
        "trainer.use_ema=true",
        f"trainer.precision={precision}",
        f"trainer.schedule.joint={str(joint).lower()}",
        "trainer.max_steps=12",
        "trainer.checkpoint_every=12",
        "trainer.demo_every=12",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    ckpt = run / "checkpoints/step_00000012"
    weights = load_file(ckpt / "model.safetensors")
    assert all(w.dtype == torch.float32 and w.isfinite().all() for w in weights.values())
    assert (run / "demos").is_dir()
    skipped = scalars(run, "nonfinite/skipped")
    total = scalars(run, "loss/total")
    assert total and all(math.isfinite(v) for v in total.values())
    if precision == "fp16":
        assert (ckpt / "scaler.pt").is_file()  # the loss scale resumes too
        scale = scalars(run, "amp/scale")
        assert set(scale) == set(range(1, 13))
        # each overflow halves the scale (from 65536) and skips one update; growth needs 2000
        assert scale[12] == 65536 / 2 ** skipped[12]
        assert skipped[12] < 12
    else:
        assert skipped[12] == 0


def test_the_model_on_cuda_matches_the_cpu(exact_fp32):
    model = smoke_model(fold=False)
    x = torch.randn(2, 2, 4096)
    with torch.no_grad():  # the VAE's mean (its samples would differ: other random streams)
        ref = model.decode(model.encode(x, sample=False).latents)
        model.cuda()
        out = model.decode(model.encode(x.cuda(), sample=False).latents).cpu()
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_chunked_inference_on_cuda_matches_the_cpu(exact_fp32):
    model = optimize_for_inference(smoke_model())
    x = torch.randn(1, 2, 16000 * 3)
    ref = encode_long(model, x, 64, 16)
    ref_audio = decode_long(model, ref.latents, ref.length, 64, 16)
    model.cuda()
    enc = encode_long(model, x, 64, 16)
    audio = decode_long(model, enc.latents, enc.length, 64, 16)
    assert enc.latents.device.type == "cpu" and audio.device.type == "cpu"
    torch.testing.assert_close(enc.latents, ref.latents, rtol=0, atol=1e-5)
    torch.testing.assert_close(audio, ref_audio, rtol=0, atol=1e-5)
