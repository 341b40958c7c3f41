"""Faults: killed saves, preemption, full disks, divergence, bad configs, several processes."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from audioae.errors import AudioAEError, CheckpointError
from audioae.runs import find_checkpoint
from audioae.train import setup
from audioae.train.loop import Preempted, TrainingDiverged, train
from conftest import compose_train, run_cli, scalars

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
FAST = ("experiment=smoke", "trainer.demo_every=0")


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_sigkill_during_a_save_keeps_the_previous_checkpoint(tmp_path):
    run = tmp_path / "run"
    marker = tmp_path / "saving"
    # A child that trains with a checkpoint every step and hangs inside the second save.
    child = textwrap.dedent(f"""
        import sys, time, torch
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from conftest import compose_train
        from audioae import runs
        from audioae.train import loop
        real_save = torch.save
        def slow_save(obj, path, *a, **k):
            real_save(obj, path, *a, **k)
            if "step_00000002" in str(path):
                open({str(marker)!r}, "w").close()
                time.sleep(600)
        runs.torch.save = slow_save
        cfg = compose_train("experiment=smoke", "trainer.demo_every=0", "trainer.max_steps=3",
                            "trainer.checkpoint_every=1")
        loop.train(cfg, {str(run)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stderr=subprocess.PIPE)
    wait_for(marker, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["step_00000001", "step_00000002.tmp"]
    assert find_checkpoint(run).name == "step_00000001"
    weights = load_file(run / "checkpoints/step_00000001/model.safetensors")
    assert "encoder.layers.0.weight_v" in weights
    # resume=auto picks the newest complete checkpoint and finishes the run
    run_cli(
        "audioae-train",
        *FAST,
        "trainer.max_steps=3",
        "resume=auto",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    assert find_checkpoint(run).name == "step_00000003"


def test_sigterm_saves_at_the_current_step_and_exits_143(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [
            str(BIN / "audioae-train"),
            *FAST,
            "trainer.max_steps=100000",
            "trainer.checkpoint_every=100000",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(run / "tb", proc)
    time.sleep(2)  # let it take a few steps
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM == 143, err  # saved, but not finished
    assert "SIGTERM received" in out + err and "Traceback" not in err
    ckpt = find_checkpoint(run)
    step = int(ckpt.name.split("_")[1])
    assert 0 < step < 100000
    assert f"checkpoint:  {ckpt}" in out


def test_sigusr2_saves_first_then_hands_over_to_submitits_handler(tmp_path, monkeypatch):
    # submitit installs its SIGUSR2 handler (requeue; exit on rank 0) before the job runs
    run = tmp_path / "run"
    seen = []
    previous = signal.signal(signal.SIGUSR2, lambda *_: seen.append(find_checkpoint(run).name))
    real_step = setup.Training.step

    def step(self, step, reals, acc):
        result = real_step(self, step, reals, acc)
        if step == 1:  # the time-out warning arrives during the second step
            os.kill(os.getpid(), signal.SIGUSR2)
        return result

    monkeypatch.setattr(setup.Training, "step", step)
    cfg = compose_train(*FAST, "trainer.max_steps=50", "trainer.checkpoint_every=50")
    try:
        with pytest.raises(Preempted) as stopped:
            train(cfg, run)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert seen == ["step_00000002"]  # called once, with the checkpoint of that step saved
    assert stopped.value.checkpoint.name == "step_00000002"
    assert stopped.value.status == 128 + signal.SIGUSR2


def torchrun(run: Path, *overrides: str) -> list[str]:
    """Two CPU processes (gloo) under torchrun, as SLURM's tasks would run them."""
    return [
        str(BIN / "torchrun"),
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "audioae.cli.train",
        *FAST,
        f"hydra.run.dir={run}",
        *overrides,
    ]


def test_sigusr2_stops_two_processes_at_one_step_and_resume_matches(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    run, ref = tmp_path / "run", tmp_path / "ref"
    proc = subprocess.Popen(
        torchrun(run, "trainer.max_steps=1000", "trainer.checkpoint_every=1000"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    chunks: list[bytes] = []
    fd = proc.stdout.fileno()
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(fd, 4096), b"")))
    reader.start()
    deadline = time.monotonic() + 300
    # rank 0's progress bar shows step 1 once both processes are in the loop (a step is collective)
    while b"1/1000" not in b"".join(chunks):
        assert proc.poll() is None and time.monotonic() < deadline, b"".join(chunks)[-3000:]
        time.sleep(0.2)
    workers = psutil.Process(proc.pid).children()
    assert len(workers) == 2
    for worker in workers:  # as SLURM signals every task of the job
        worker.send_signal(signal.SIGUSR2)
    proc.wait(timeout=300)
    reader.join()
    err = b"".join(chunks).decode(errors="replace")
    # each process saved, then exited 128 + SIGUSR2 (preempted, not finished); torchrun fails
    assert proc.returncode != 0 and f"exitcode  : {128 + signal.SIGUSR2}" in err, err[-3000:]
    ckpt = find_checkpoint(run)
    step = int(ckpt.name.split("_")[1])
    assert 0 < step < 1000
    # one checkpoint, saved by both processes together (Accelerate's save is collective)
    assert f"SIGUSR2 received: saved {ckpt}" in err

    # resume=auto continues; its losses and weights equal an uninterrupted run's
    steps = step + 2
    for folder, extra in ((run, ["resume=auto"]), (ref, [])):
        done = subprocess.run(
            torchrun(folder, f"trainer.max_steps={steps}", *extra),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed from {ckpt} at step {step}" in (run / "train.log").read_text()
    resumed, straight = scalars(run, "loss/total"), scalars(ref, "loss/total")
    assert sorted(resumed) == sorted(straight) == list(range(1, steps + 1))
    assert resumed == straight
    last = f"checkpoints/step_{steps:08d}/model.safetensors"
    a, b = load_file(run / last), load_file(ref / last)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref", "run"]  # rank 1 wrote nothing
    assert sorted(p.name for p in (run / ".hydra").iterdir()) == [
        "config.yaml",
        "hydra.yaml",
        "overrides.yaml",
    ]


def test_unwritable_run_directory_is_one_clear_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_cli(
        "audioae-train",
        *FAST,
        f"hydra.run.dir={blocker / 'run'}",
        "hydra.output_subdir=null",
        "hydra/job_logging=disabled",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "cannot write the run directory" in proc.stderr and str(blocker) in proc.stderr


def test_full_disk_during_a_save_keeps_older_checkpoints(tmp_path, monkeypatch):
    from audioae import runs

    real_save = torch.save

    def full_disk(obj, path, *args, **kwargs):
        if "step_00000002" in str(path):
            raise OSError(28, "No space left on device")
        real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(runs.torch, "save", full_disk)
    cfg = compose_train(*FAST, "trainer.max_steps=2", "trainer.checkpoint_every=1")
    with pytest.raises(CheckpointError, match="No space left on device; earlier checkpoints"):
        train(cfg, tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run/checkpoints").iterdir()) == ["step_00000001"]


def test_non_finite_steps_are_skipped_then_the_run_stops(tmp_path, monkeypatch):
    real = setup.Losses.forward

    def poisoned(self, recon, real_audio):
        out = real(self, recon, real_audio)
        if loop_state["calls"] >= 2:  # first two steps fine, then NaN forever
            out["spec/mrstft"] = out["spec/mrstft"] * float("nan")
        loop_state["calls"] += 1
        return out

    loop_state = {"calls": 0}
    monkeypatch.setattr(setup.Losses, "forward", poisoned)
    real_step = setup.Training.step
    states = []  # (finite, state before, state after) of each step

    def recorded(self, step, reals, acc):
        model = acc.unwrap_model(self.gen.module)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        result = real_step(self, step, reals, acc)
        assert result.finite == all(math.isfinite(v) for v in result.logs.values())
        after = {k: v.clone() for k, v in model.state_dict().items()}
        states.append((result.finite, before, after))
        return result

    monkeypatch.setattr(setup.Training, "step", recorded)
    cfg = compose_train(
        *FAST,
        "bottleneck=rvq",  # codebooks that learn in the forward pass (EMA, dead-code restarts)
        "bottleneck.codebook_size=64",
        "bottleneck.num_quantizers=2",
        "trainer.max_steps=50",
        "trainer.checkpoint_every=2",
        "trainer.max_nonfinite=3",
    )
    with pytest.raises(TrainingDiverged) as err:
        train(cfg, tmp_path / "run")
    message = str(err.value)
    assert "3 consecutive steps" in message and "step_00000002" in message
    # the skipped steps did not touch the weights: the step-2 checkpoint is the last written
    assert find_checkpoint(tmp_path / "run").name == "step_00000002"
    assert [finite for finite, _, _ in states] == [True, True, False, False, False]
    codebooks = [k for k in states[0][1] if "codebook" in k]
    assert codebooks
    for finite, before, after in states:
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        if finite:  # a real step moves the weights and the codebooks
            assert "decoder.layers.0.weight_v" in changed and set(codebooks) & changed
        else:  # a skipped one leaves every parameter and buffer as it was
            assert changed == set()


@pytest.mark.parametrize(
    "override, words",
    [
        ("trainer.max_steps=abc", ["trainer.max_steps", "abc"]),
        ("+trainer.max_stepz=3", ["trainer.max_stepz"]),
        ("+encoder.latent_dim=7", ["encoder.latent_dim"]),
        ("+decoder.latent_dim=3", ["decoder.latent_dim"]),
        ("sample_size=2044", ["sample_size", "downsampling ratio"]),
        ("downsampling_ratio=16", ["downsampling_ratio", "encoder.strides"]),
    ],
)
def test_bad_configs_fail_before_reading_data(tmp_path, override, words):
    # data.path does not exist: a config error must be reported first, without reading data
    proc = run_cli(
        "audioae-train",
        *FAST,
        "data=audio_dir",
        f"data.path={tmp_path / 'none'}",
        override,
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in proc.stderr
    assert "data folder not found" not in proc.stderr


def test_two_processes_train_the_gan_and_resume(tmp_path):
    run = tmp_path / "run"
    launch = [
        str(BIN / "accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "audioae.cli.train",
        *FAST,
        "loss=mrstft_gan",
        "trainer.use_ema=true",
        f"hydra.run.dir={run}",
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    for steps in (2, 4):
        proc = subprocess.run(
            [*launch, f"trainer.max_steps={steps}", "resume=auto"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    log = (run / "train.log").read_text()
    # trainer.data_init (the default) set rank 0's weights from its first batch; rank 1 took them
    assert log.count("data-dependent initialisation on a batch") == 1  # not again on resume
    assert "step 2: weights identical across 2 processes" in log
    assert "step 4: weights identical across 2 processes" in log
    assert "resumed from" in log
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # rank 1 wrote nothing else
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step_00000002",
        "step_00000004",
    ]


def test_audioae_errors_are_one_line(tmp_path):
    """Every command, given bad input, prints one line naming the problem on stderr, no
    traceback, and exits with status 2 (audioae/errors.py)."""
    assert issubclass(CheckpointError, AudioAEError)
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros((4410, 1)), 44100)
    not_a_model = tmp_path / "not_a_model"
    not_a_model.mkdir()
    (tmp_path / "list.json").write_text("[1, 2]")
    run = tmp_path / "run"
    cases = {
        "audioae-train": [
            *FAST,
            "data=audio_dir",
            f"data.path={tmp_path}/no",
            f"hydra.run.dir={run}",
        ],
        "audioae-encode": [str(not_a_model), str(wav), "--out", str(tmp_path / "codes")],
        "audioae-eval": [str(not_a_model), str(wav), "--out", str(tmp_path / "eval")],
        "audioae-export": [str(not_a_model), "--out", str(tmp_path / "export")],
        "audioae-convert": [str(tmp_path / "list.json")],
    }
    expected = {
        "audioae-train": "data folder not found",
        "audioae-encode": "not_a_model",
        "audioae-eval": "not_a_model",
        "audioae-export": "not_a_model",
        "audioae-convert": "expected a JSON object",
    }
    for command, args in cases.items():
        proc = run_cli(command, *args, cwd=tmp_path, check=False)
        lines = proc.stderr.splitlines()
        assert proc.returncode == 2 and len(lines) == 1, (command, proc.returncode, proc.stderr)
        assert lines[0].startswith(f"{command}: ") and expected[command] in lines[0], lines
        assert "Traceback" not in proc.stderr + proc.stdout, command
