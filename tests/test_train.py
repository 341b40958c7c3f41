"""Training through the real entry point: `audioae-train` in a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from conftest import ON_CPU, run_cli, scalars

pytestmark = pytest.mark.slow


def train(tmp: Path, name: str, *overrides: str, env: dict[str, str] | None = None):
    run = tmp / name
    args = ("experiment=smoke", f"hydra.run.dir={run}", *overrides)
    return run, run_cli("audioae-train", *args, cwd=tmp, env=env)


def test_three_steps_write_checkpoint_config_and_tensorboard(tmp_path):
    run, proc = train(tmp_path, "a", "trainer.max_steps=3", "trainer.checkpoint_every=2")
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["step_00000002", "step_00000003"]
    weights = load_file(run / "checkpoints/step_00000003/model.safetensors")
    assert "encoder.layers.0.weight_v" in weights
    cfg = OmegaConf.load(run / "config.yaml")
    assert cfg.trainer.max_steps == 3 and cfg.data.sample_rate == 16000  # resolved
    losses = scalars(run, "loss/total")
    assert sorted(losses) == [1, 2, 3]
    assert set(scalars(run, "loss/kl")) == {1, 2, 3}
    assert "checkpoint:" in proc.stdout and str(run) in proc.stdout


def test_resume_continues_at_the_same_step_and_matches_uninterrupted(tmp_path):
    straight, _ = train(tmp_path, "straight", "trainer.max_steps=4", env=ON_CPU)
    first, _ = train(tmp_path, "first", "trainer.max_steps=2", env=ON_CPU)
    resumed, _ = train(tmp_path, "resumed", "trainer.max_steps=4", f"resume={first}", env=ON_CPU)
    assert sorted(scalars(resumed, "loss/total")) == [3, 4]
    a = load_file(straight / "checkpoints/step_00000004/model.safetensors")
    b = load_file(resumed / "checkpoints/step_00000004/model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert scalars(straight, "loss/total")[4] == scalars(resumed, "loss/total")[4]


def test_data_init_runs_once_at_a_fresh_start_and_resume_matches(tmp_path):
    """trainer.data_init=LEVEL sets the weights from the first batch at a fresh start only: a run
    resumed at step 1 ends with the uninterrupted run's weights, and both differ from a run
    without the init (the same seed and batches)."""
    on = ("trainer.data_init=0.1", "trainer.checkpoint_every=1")
    straight, proc = train(tmp_path, "straight", "trainer.max_steps=2", *on, env=ON_CPU)
    assert "data-dependent initialisation on a batch of 2 crops" in proc.stdout + proc.stderr
    first, _ = train(tmp_path, "first", "trainer.max_steps=1", *on, env=ON_CPU)
    resumed, proc = train(
        tmp_path, "resumed", "trainer.max_steps=2", *on, f"resume={first}", env=ON_CPU
    )
    assert "data-dependent" not in proc.stdout + proc.stderr
    plain, _ = train(tmp_path, "plain", "trainer.max_steps=2", "trainer.data_init=null", env=ON_CPU)
    a, b, c = (
        load_file(run / "checkpoints/step_00000002/model.safetensors")
        for run in (straight, resumed, plain)
    )
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert not torch.equal(a["decoder.layers.0.weight_g"], c["decoder.layers.0.weight_g"])
    assert not torch.equal(a["decoder.layers.0.bias"], c["decoder.layers.0.bias"])


def test_multirun_sweeps_two_bottlenecks(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli(
        "audioae-train",
        "-m",
        "experiment=smoke",
        "bottleneck=vae,tanh",
        "trainer.max_steps=2",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    for job in ("0", "1"):
        assert (sweep / job / "checkpoints/step_00000002/model.safetensors").exists()
    assert OmegaConf.load(sweep / "1/config.yaml").bottleneck._target_.endswith("Tanh")


def test_bad_override_is_one_clear_line(tmp_path):
    proc = run_cli(
        "audioae-train",
        "experiment=smoke",
        "+encoder.chanels=3",
        f"hydra.run.dir={tmp_path / 'bad'}",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "encoder" in proc.stderr and "chanels" in proc.stderr
