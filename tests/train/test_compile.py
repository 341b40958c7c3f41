"""trainer.compile=true: torch.compile'd forward passes train, save the keys an eager run saves
(no `_orig_mod.` prefixes) and resume exactly. Through `audioae-train`, on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ON_CPU, compose_train, run_cli, scalars

GAN = ("experiment=smoke", "loss=mrstft_gan", "trainer.use_ema=true", "trainer.demo_every=0")
# a two-scale encodec discriminator of 4 filters: inductor compiles every scale's graph on first
# use, and with the default's five 32-filter scales this test took 4.5 minutes instead of 2.3
SMALL_DISC = (
    "discriminator.filters=4",
    "discriminator.n_ffts=[256,128]",
    "discriminator.hop_lengths=[64,32]",
    "discriminator.win_lengths=[256,128]",
)


def train(tmp: Path, name: str, *overrides: str) -> Path:
    run = tmp / name
    args = (*GAN, *SMALL_DISC, f"hydra.run.dir={run}", *overrides)
    run_cli("audioae-train", *args, cwd=tmp, env=ON_CPU)
    return run


def test_build_training_compiles_both_networks_in_place():
    """Nothing compiles before the first call: this only checks what compile=true sets up."""
    from accelerate import Accelerator

    from audioae.train.setup import build_training

    cfg = compose_train(*GAN)
    eager = build_training(cfg, Accelerator(cpu=True))
    cfg.trainer.compile = True
    training = build_training(cfg, Accelerator(cpu=True))
    model = training.gen.module
    assert model._compiled_call_impl is not None
    assert training.dis.module._compiled_call_impl is not None
    assert training.ema.model._compiled_call_impl is None  # the EMA copy stays eager
    assert list(model.state_dict()) == list(eager.gen.module.state_dict())
    assert list(training.dis.module.state_dict()) == list(eager.dis.module.state_dict())
    # the encodec discriminator's 5 scales x 2 kinds of step recompile one frame 10+ times
    # (measured: with the default limit of 8 dynamo gave up and ran it eager)
    assert torch._dynamo.config.recompile_limit >= 64


@pytest.mark.slow  # inductor compiles each network on first use (a minute or more on a CPU)
def test_compiled_run_saves_eager_keys_and_resumes_exactly(tmp_path):
    eager = train(tmp_path, "eager", "trainer.max_steps=2")
    straight = train(tmp_path, "straight", "trainer.max_steps=4", "trainer.compile=true")
    # resumed from the uninterrupted run's step-2 checkpoint, in a process of its own
    step2 = straight / "checkpoints/step_00000002"
    resumed = train(
        tmp_path,
        "resumed",
        "trainer.max_steps=4",
        "trainer.compile=true",
        f"resume={step2}",
    )
    for name in ("model", "ema", "discriminator"):
        keys = load_file(eager / f"checkpoints/step_00000002/{name}.safetensors").keys()
        saved = load_file(step2 / f"{name}.safetensors")
        assert saved.keys() == keys, name
        assert not [k for k in saved if "_orig_mod" in k]
        a = load_file(straight / f"checkpoints/step_00000004/{name}.safetensors")
        b = load_file(resumed / f"checkpoints/step_00000004/{name}.safetensors")
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{name}: {key}")
    # it trained: both networks stepped, the losses are finite and the same as uninterrupted
    # (generator and discriminator updates alternate: the generator's scalars are at odd steps)
    assert sorted(scalars(resumed, "loss/total")) == [3]
    assert scalars(straight, "loss/total")[3] == scalars(resumed, "loss/total")[3]
    for tag in ("loss/total", "loss/adv/disc", "loss/adv/gen"):
        values = torch.tensor(list(scalars(straight, tag).values()))
        assert values.numel() and values.isfinite().all(), tag
    # the weights moved from the eager run's initial state (same seed)
    w0 = load_file(eager / "checkpoints/step_00000002/model.safetensors")
    w4 = load_file(straight / "checkpoints/step_00000004/model.safetensors")
    assert any(not torch.equal(w0[k], w4[k]) for k in w0)
