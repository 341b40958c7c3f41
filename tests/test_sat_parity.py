"""Lock-step parity of audioae's training step with stable-audio-tools 0.0.20's
`AutoencoderTrainingWrapper` under Lightning (its throwaway venv: docs/benchmarks.md).

Both sides train the same converted config from the same initial weights (SAT builds them,
audioae loads its state dict) on the same batches, with the VAE's sampling noise and 0.0.20's
silence-mask draws made identical; after each of 12 alternating steps (6 generator, 6
discriminator) every loss term, the gradients of the network that stepped, both networks' weights
both learning rates and the EMA's weights are compared.

The documented departures from stable-audio-tools (its bugs) do not arise in this config: no
PQMF, no adversarial warmup. The EMA's weights are compared too.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from unittest import mock

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file

from audioae.convert import sat_config
from audioae.train.setup import build_training
from audioae.train.step import train_step

SAT_PYTHON = Path(os.environ.get("AUDIOAE_SAT_PYTHON", "/tmp/satvenv/bin/python"))
WORKER = Path(__file__).with_name("sat_parity_worker.py")
CONFIG = Path(
    os.environ.get("AUDIOAE_SAT_CONFIGS", Path(__file__).parents[2] / "shared/sat-configs")
)
STEPS, BATCH, CROP, LATENT, RATIO = 12, 2, 8192, 4, 512

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not SAT_PYTHON.exists(), reason=f"no stable-audio-tools 0.0.20 venv at {SAT_PYTHON}"
    ),
]


def small_config() -> dict:
    """stable_audio_2_0_vae.json at a test size: widths, strides and crop made small, every
    training setting (losses, weights, optimizers, schedulers) as shipped."""
    c = json.loads((CONFIG / "stable_audio_2_0_vae.json").read_text())
    model = c["model"]
    for side in ("encoder", "decoder"):
        model[side]["config"].update(channels=4, c_mults=[1, 2, 4, 8], strides=[2, 4, 8, 8])
    model["encoder"]["config"]["latent_dim"] = 2 * LATENT
    model["decoder"]["config"]["latent_dim"] = LATENT
    model.update(latent_dim=LATENT, downsampling_ratio=RATIO)
    c["sample_size"] = CROP
    c["training"]["loss_configs"]["discriminator"]["config"]["filters"] = 4
    return c


def inputs() -> dict[str, torch.Tensor]:
    """Batches of stereo noise (one crop dual mono, like speech), the VAE's noise and the silence
    mask's uniform draws (all above 1e-3 but one, so step 4 silences its first crop)."""
    g = torch.Generator().manual_seed(0)
    t = {}
    for i in range(STEPS):
        x = torch.randn(BATCH, 2, CROP, generator=g) * 0.1
        x[0, 1] = 0.6 * x[0, 1] + 0.4 * x[0, 0]
        x[1, 1] = x[1, 0]
        t[f"batch.{i}"] = x
        t[f"noise.{i}"] = torch.randn(BATCH, LATENT, CROP // RATIO, generator=g)
        t[f"silence.{i}"] = 0.01 + torch.rand(BATCH, 1, 1, generator=g)
    t["silence.4"][0] = 0.0
    return t


@pytest.fixture(scope="module")
def sat_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sat_parity")
    (folder / "config.json").write_text(json.dumps(small_config()))
    save_file(inputs(), str(folder / "inputs.safetensors"))
    job = {"config": str(folder / "config.json"), "inputs": str(folder / "inputs.safetensors"),
           "steps": STEPS, "seed": 0, "out": str(folder / "sat.safetensors")}  # fmt: skip
    (folder / "job.json").write_text(json.dumps(job))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [str(SAT_PYTHON), str(WORKER), str(folder / "job.json")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((folder / "sat.safetensors.json").read_text())
    assert meta["noise_used"] == STEPS and meta["silence_used"] == STEPS, meta
    assert meta["global_step"] == STEPS, meta  # one optimizer step per batch: G, D, G, ...
    return folder, load_file(str(folder / "sat.safetensors"))


class Queue:
    """torch.randn_like / torch.rand replaced: the queued shape pops the next tensor."""

    def __init__(self, real, tensors, shape_of):
        self.real, self.tensors, self.shape_of, self.used = real, list(tensors), shape_of, 0

    def __call__(self, *args, **kwargs):
        if self.tensors and tuple(self.shape_of(*args)) == tuple(self.tensors[0].shape):
            self.used += 1
            return self.tensors.pop(0).clone()
        return self.real(*args, **kwargs)


def prefixed(tensors: dict, prefix: str) -> dict:
    return {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}


def close(ours: dict, theirs: dict, what: str, rtol: float) -> None:
    """Every tensor within rtol of the whole set's norm (a tensor whose own values are ~0, like
    a dead unit's gradient, is then judged against the rest)."""
    assert ours.keys() == theirs.keys(), f"{what}: {sorted(ours.keys() ^ theirs.keys())[:5]}"
    scale = torch.cat([v.flatten() for v in theirs.values()]).norm()
    worst = max(((ours[k] - theirs[k]).norm() / scale, k) for k in theirs)
    assert worst[0] < rtol, f"{what}: {worst[1]} differs by {float(worst[0]):.2e} of the norm"


def test_training_steps_match_stable_audio_tools(sat_run):
    folder, sat = sat_run
    batches = load_file(str(folder / "inputs.safetensors"))
    cfg = sat_config(folder / "config.json")
    assert cfg.loss.terms.spectral.form == "sat" and cfg.augment.silence_p == 1e-3
    torch.manual_seed(0)
    acc = Accelerator(cpu=True)
    t = build_training(cfg, acc)
    model = acc.unwrap_model(t.gen.module)
    model.load_state_dict(prefixed(sat, "init.autoencoder."), strict=True)
    t.dis.module.load_state_dict(prefixed(sat, "init.discriminator."), strict=True)
    grads: dict[str, torch.Tensor] = {}
    for net in (t.gen, t.dis):
        step = net.opt.step

        def record(*args, _step=step, _net=net, **kwargs):
            grads.clear()
            grads.update({n: p.grad.clone() for n, p in _net.module.named_parameters()})
            return _step(*args, **kwargs)

        net.opt.step = record
    noise = Queue(
        torch.randn_like, [batches[f"noise.{i}"] for i in range(STEPS)], lambda x: x.shape
    )
    w = t.weights
    with mock.patch.object(torch, "randn_like", noise):
        for i in range(STEPS):
            # audioae zeroes crops in the loader (augment.silence_p), SAT in the step: the same
            # draws zero the same crops here
            reals = batches[f"batch.{i}"] * (batches[f"silence.{i}"] >= cfg.augment.silence_p)
            logs = train_step(i, [reals], t, acc).logs
            theirs = {k: float(v) for k, v in prefixed(sat, f"s{i}.loss.").items()}
            if i % 2 == 0:  # SAT: the generator on even global steps, the adversary on odd
                ours = {
                    "spectral": logs["loss/spec/mrstft"] * w["spec/mrstft"],
                    "kl": logs["loss/kl"] * w["kl"],
                    "adversarial": logs["loss/adv/gen"] * w["adv/gen"],
                    "feature matching": logs["loss/adv/feat"] * w["adv/feat"],
                    "total": logs["loss/total"],
                }
                sat_terms = {
                    "spectral": theirs["mrstft_loss"] + theirs["lr_stft_loss"],
                    "kl": theirs["kl_loss"],
                    "adversarial": theirs["loss_adv"],
                    "feature matching": theirs["feature_matching_loss"],
                    "total": theirs["total"],
                }
            else:
                ours = {"discriminator": logs["loss/adv/disc"]}
                sat_terms = {"discriminator": theirs["discriminator_loss"]}
            for name, value in ours.items():
                assert value == pytest.approx(sat_terms[name], rel=1e-4, abs=1e-7), (i, name)
            # 5e-3: a discriminator bias's gradient sums many terms that cancel (hinge real vs
            # fake), so another summation order (thread count) moves it by ~1e-3 of the norm
            close(grads, prefixed(sat, f"s{i}.grad."), f"step {i} gradients", 5e-3)
            close(model.state_dict(), prefixed(sat, f"s{i}.autoencoder."), f"step {i}", 1e-5)
            close(t.dis.module.state_dict(), prefixed(sat, f"s{i}.discriminator."), f"step {i}",
                  1e-5)  # fmt: skip
            # 0.0.20's EMA: updated after every 10th batch (the 5th generator step), a copy for
            # its first 2000 updates
            close(t.ema.model.state_dict(), prefixed(sat, f"s{i}.ema."), f"step {i} EMA", 1e-5)
            for key, net in (("generator", t.gen), ("discriminator", t.dis)):
                lr = net.opt.param_groups[0]["lr"]
                assert lr == pytest.approx(float(sat[f"s{i}.lr.{key}"]), rel=1e-6), (i, key)
    assert noise.used == STEPS
