"""The GAN loop end to end: accumulation, demos, EMA and discriminator state on resume."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from audioae.metrics import mel_distance, si_sdr
from audioae.train.loop import train
from conftest import ON_CPU, compose_train, run_cli, scalars

pytestmark = pytest.mark.slow

GAN = ("experiment=smoke", "loss=mrstft_gan", "trainer.use_ema=true")


def weights(ckpt: Path, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    return load_file(ckpt / name)


def train_on_cpu(run: Path, *overrides: str) -> Path:
    """`audioae-train OVERRIDES` on the CPU whatever the machine (bitwise comparisons);
    returns the last checkpoint."""
    run_cli("audioae-train", *overrides, f"hydra.run.dir={run}", cwd=run.parent, env=ON_CPU)
    return sorted((run / "checkpoints").iterdir())[-1]


def test_gradient_accumulation_2x2_equals_4x1(tmp_path):
    common = (
        "experiment=smoke",
        "bottleneck=tanh",
        "loss.weights.spec.mrstft=0",
        "loss.weights.time.l1=1",
        "trainer.max_steps=2",
        "trainer.demo_every=0",
    )
    a = train_on_cpu(tmp_path / "a", *common, "trainer.batch_size=2", "trainer.grad_accum=2")
    b = train_on_cpu(tmp_path / "b", *common, "trainer.batch_size=4", "trainer.grad_accum=1")
    wa, wb = weights(a), weights(b)
    assert a.name == "step_00000002"
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-7, msg=key)


def test_gan_run_writes_demo_wavs_and_tensorboard_audio(tmp_path):
    run = tmp_path / "gan"
    run_cli(
        "audioae-train",
        *GAN,
        "trainer.max_steps=4",
        "trainer.demo_every=2",
        "trainer.num_demos=2",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    demo = run / "demos" / "step_00000004"
    assert sorted(p.name for p in demo.iterdir()) == [
        "0_real.wav",
        "0_recon.wav",
        "1_real.wav",
        "1_recon.wav",
    ]
    cfg = compose_train(*GAN)
    for name in ("0_real.wav", "0_recon.wav", "1_real.wav", "1_recon.wav"):
        audio, sr = sf.read(demo / name, dtype="float32")
        assert sr == cfg.sample_rate and audio.shape == (cfg.sample_size, cfg.io_channels), name
        assert np.sqrt(np.mean(audio**2)) > 1e-3, f"{name} is silent"
    real, _ = sf.read(demo / "0_real.wav")
    assert not np.allclose(real, sf.read(demo / "1_real.wav")[0])  # two different clips
    assert not np.allclose(real, sf.read(demo / "0_recon.wav")[0])
    events = EventAccumulator(str(run / "tb"), size_guidance={"audio": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert "demo/0_mel_real_vs_recon" in tags["images"]
    logged = events.Audio("demo/0_recon")
    assert [e.step for e in logged] == [2, 4]
    assert logged[-1].sample_rate == cfg.sample_rate
    assert logged[-1].length_frames == cfg.sample_size
    tb_audio, tb_sr = sf.read(io.BytesIO(logged[-1].encoded_audio_string), dtype="float32")
    recon, _ = sf.read(demo / "0_recon.wav", dtype="float32")
    assert tb_sr == cfg.sample_rate  # the first channel of the WAV (TensorBoard audio is mono)
    np.testing.assert_allclose(tb_audio, recon[:, 0], atol=2 / 2**15)
    scalars = set(tags["scalars"])
    assert {
        "loss/adv/disc",
        "loss/adv/gen",
        "loss/adv/feat",
        "loss/spec/mrstft",
        "loss/kl",
        "grad_norm/generator",
        "grad_norm/discriminator",
        "lr/generator",
        "lr/discriminator",
        "latent/std",
        "latent/mean",
    } <= scalars
    ckpt = run / "checkpoints" / "step_00000004"
    assert (ckpt / "ema.safetensors").exists()
    assert any("convs" in k for k in weights(ckpt, "discriminator.safetensors"))


def test_log_points_average_every_scalar_since_the_last_one(tmp_path):
    # The (1, 1) alternation trains G on even step indices and D on odd ones: with an even
    # log_every, a log point that showed only its own step would never show the generator.
    common = (*GAN, "trainer.max_steps=4", "trainer.demo_every=0")
    train(compose_train(*common, "trainer.log_every=1"), tmp_path / "every")
    train(compose_train(*common, "trainer.log_every=4"), tmp_path / "fours")
    every, fours = all_scalars(tmp_path / "every"), all_scalars(tmp_path / "fours")
    for tag in ("loss/adv/gen", "loss/spec/mrstft", "grad_norm/generator", "latent/std"):
        assert sorted(every[tag]) == [1, 3], tag  # G steps
        assert sorted(fours[tag]) == [1, 4], tag  # logged at step 4 although G trained at 3
    for tag in ("loss/adv/disc", "grad_norm/discriminator"):
        assert sorted(every[tag]) == [2, 4], tag  # D steps
        assert sorted(fours[tag]) == [4], tag
    averaged = [t for t in fours if t.startswith(("loss/", "grad_norm/", "latent/"))]
    assert len(averaged) >= 10
    for tag in averaged:  # at step 4: the mean of steps 2-4 that produced the scalar
        steps = [s for s in (2, 3, 4) if s in every[tag]]
        mean = sum(every[tag][s] for s in steps) / len(steps)
        assert fours[tag][4] == pytest.approx(mean, rel=1e-6), tag
        assert fours[tag].get(1) == every[tag].get(1), tag  # step 1 is a log point of both
    disc = every["loss/adv/disc"]
    assert disc[2] != disc[4]
    assert fours["loss/adv/disc"][4] == pytest.approx((disc[2] + disc[4]) / 2, rel=1e-6)

    # throughput, from the same runs: positive, and audio s/s = audio per step / step time
    cfg = compose_train(*common)
    audio_per_step = cfg.trainer.batch_size * cfg.sample_size / cfg.sample_rate
    for step in (1, 4):
        step_s, wait_s = fours["perf/step_s"][step], fours["perf/data_wait_s"][step]
        assert step_s > 0 and 0 < wait_s < step_s
        rate = fours["perf/audio_s_per_s"][step]
        assert rate == pytest.approx(audio_per_step / step_s, rel=1e-5)


def all_scalars(run: Path) -> dict[str, dict[int, float]]:
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    return {tag: scalars(run, tag) for tag in events.Tags()["scalars"]}


def test_resume_restores_ema_and_discriminator(tmp_path):
    fast = ("trainer.demo_every=0",)
    straight = train_on_cpu(tmp_path / "s", *GAN, *fast, "trainer.max_steps=4")
    train_on_cpu(tmp_path / "f", *GAN, *fast, "trainer.max_steps=2")
    resumed = train_on_cpu(
        tmp_path / "r", *GAN, *fast, "trainer.max_steps=4", f"resume={tmp_path / 'f'}"
    )
    for name in ("model.safetensors", "discriminator.safetensors", "ema.safetensors"):
        a, b = weights(straight, name), weights(resumed, name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key}"


def test_validation_runs_during_a_smoke_run_and_logs_metrics(tmp_path):
    run = tmp_path / "val"
    train(
        compose_train(
            "experiment=smoke",
            "trainer.max_steps=2",
            "trainer.val_every=1",
            "trainer.val_batches=1",
            "trainer.demo_every=0",
            "trainer.data_init=null",  # PyTorch's init: a step moves SI-SDR by well under 1 dB
        ),
        run,
    )
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"val/spec/mrstft", "val/si_sdr", "val/mel_distance", "val/stft_distance"} <= tags
    assert "val/dependence" in tags  # the batch's consecutive items: evaluate.Dependence
    val = {tag: scalars(run, tag) for tag in tags if tag.startswith("val/")}
    assert all(sorted(v) == [1, 2] for v in val.values())  # two validations
    sdr, mel, stft = val["val/si_sdr"], val["val/mel_distance"], val["val/stft_distance"]
    # the identity scores SI-SDR > 80 dB and distances 0; an untrained model far worse
    clip = torch.randn(1, 2, 2048)
    assert si_sdr(clip, clip) > 80 and mel_distance(clip, clip, 16000) == 0
    for step in (1, 2):
        assert 0 <= val["val/dependence"][step] < 5
        assert -80 < sdr[step] < 0, sdr
        assert 1 < mel[step] < 20 and 1 < stft[step] < 30, (mel, stft)
        train_loss = scalars(run, "loss/spec/mrstft")[step]
        assert 0.3 < val["val/spec/mrstft"][step] / train_loss < 3  # same loss, other clips
    # the same held-out batches both times, seen by a model one step apart: close, not equal
    assert sdr[1] != sdr[2] and abs(sdr[1] - sdr[2]) < 1


def test_encoder_freezes_after_warmup(tmp_path):
    cfg = compose_train(
        "experiment=smoke",
        "trainer.max_steps=3",
        "trainer.checkpoint_every=1",
        "trainer.demo_every=0",
        "trainer.schedule.warmup_steps=1",
        "trainer.schedule.encoder_freeze_on_warmup=true",
    )
    train(cfg, tmp_path / "run")
    step1 = weights(tmp_path / "run/checkpoints/step_00000001")
    step3 = weights(tmp_path / "run/checkpoints/step_00000003")
    for key in step1:
        same = torch.equal(step1[key], step3[key])
        assert same == key.startswith("encoder."), key  # frozen encoder, training decoder


def test_freeze_with_no_warmup_warns_and_does_not_freeze(tmp_path):
    cfg = compose_train(
        "experiment=smoke",
        "trainer.max_steps=1",
        "trainer.demo_every=0",
        "trainer.schedule.warmup_steps=0",
        "trainer.schedule.encoder_freeze_on_warmup=true",
    )
    with pytest.warns(UserWarning, match="NOT frozen"):
        train(cfg, tmp_path / "run")


class _Echo(torch.nn.Module):
    """A stand-in model for `validate`: returns its input (`collapsed`: the same noise for all)."""

    sample_rate = 16000

    def __init__(self, collapsed: bool):
        super().__init__()
        self.collapsed = collapsed
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.noise = torch.randn(1, 2, 4096) * 0.1

    def inputs_and_targets(self, audio):
        return audio, audio

    def forward(self, x, sample=False):
        return (self.noise.expand_as(x) if self.collapsed else x), None


def test_validation_dependence_is_1_for_an_echo_and_0_for_a_collapsed_model():
    from audioae.train.validate import validate

    torch.manual_seed(0)
    t = torch.arange(4096) / 16000
    tones = [torch.sin(2 * torch.pi * f * t).expand(2, -1) * 0.3 for f in (300, 900, 2000, 5000)]
    batches = [torch.stack(tones[:2]), torch.stack(tones[2:])]  # pairs cross the batches
    no_losses = lambda fake, real: {}  # noqa: E731
    assert validate(_Echo(False), batches, no_losses)["dependence"] == pytest.approx(1.0)
    assert validate(_Echo(True), batches, no_losses)["dependence"] == 0.0
