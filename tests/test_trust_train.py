"""Issue 16, training side: nothing lost, nothing silent, every bad input one line.

Every case runs the real `audioae-train` and checks its exit status, a single line on stderr
without a traceback, and, where the case is about data loss, that every file the run folder held
before is byte-identical afterwards (Hydra's own .hydra/ and train.log aside)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow
FAST = ("experiment=smoke", "trainer.demo_every=0")
HYDRA_OWN = (".hydra", "train.log")
BAR = re.compile(r"\s*\d+%\|.*\]\s*$")  # a tqdm progress line


def snapshot(run: Path, hydra: bool = False) -> dict[str, str]:
    """sha256 of every file under `run` (but Hydra's own unless `hydra`), by relative path."""
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file() and (hydra or p.relative_to(run).parts[0] not in HYDRA_OWN)
    }


def train(run: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_cli("audioae-train", *FAST, f"hydra.run.dir={run}", *args, cwd=cwd, check=False)


def one_line_error(proc: subprocess.CompletedProcess, status: int = 2) -> str:
    """The one line of a failed command's stderr (the progress bar's lines aside)."""
    lines = [x for x in re.split(r"[\r\n]+", proc.stderr) if x.strip() and not BAR.match(x)]
    assert proc.returncode == status and len(lines) == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished tiny run: checkpoints at steps 1 and 2."""
    tmp = tmp_path_factory.mktemp("trained")
    proc = train(tmp / "run", "trainer.max_steps=2", "trainer.checkpoint_every=1", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return tmp / "run"


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the trained run, to do harm to."""
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def test_training_again_into_a_run_with_checkpoints_is_refused(run, tmp_path):
    before = snapshot(run, hydra=True)  # refused before Hydra rewrites .hydra/ and train.log
    line = one_line_error(train(run, "trainer.max_steps=2", cwd=tmp_path))
    assert str(run) in line and "resume=auto" in line and "hydra.run.dir" in line
    assert snapshot(run, hydra=True) == before


def test_a_run_folder_in_use_by_a_live_process_is_refused(tmp_path):
    run = tmp_path / "busy"
    run.mkdir()
    (run / ".lock").write_text(f"{os.getpid()} {socket.gethostname()}\n")  # alive: this one
    before = snapshot(run, hydra=True)
    line = one_line_error(train(run, "trainer.max_steps=1", cwd=tmp_path))
    assert f"in use by process {os.getpid()}" in line
    assert snapshot(run, hydra=True) == before
    assert not (run / "checkpoints").exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "stale"
    run.mkdir()
    (run / ".lock").write_text(f"{dead.pid} {socket.gethostname()}\n")
    proc = train(run, "trainer.max_steps=1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"taking over the lock of process {dead.pid}" in proc.stderr + proc.stdout
    assert not (run / ".lock").exists()  # released at the end
    assert (run / "checkpoints/step_00000001/model.safetensors").exists()


def test_a_complete_checkpoint_is_never_saved_over(run, tmp_path):
    from audioae.errors import CheckpointError
    from audioae.runs import save_checkpoint

    before = snapshot(run)

    class Acc:
        is_main_process = True

    with pytest.raises(CheckpointError, match="never overwritten"):
        save_checkpoint(Acc(), run, 2, None, {}, {})
    assert snapshot(run) == before


def test_the_library_refuses_a_run_in_use_too(tmp_path):
    # the command checks before Hydra runs; train() claims the folder itself
    from audioae import runs
    from audioae.errors import CheckpointError

    run = tmp_path / "run"
    runs.claim_run_dir(run, None)
    assert (run / ".lock").read_text() == f"{os.getpid()} {socket.gethostname()}\n"
    other = subprocess.run(
        [sys.executable, "-c", f"from audioae import runs; runs.claim_run_dir({str(run)!r}, None)"],
        capture_output=True,
        text=True,
    )
    assert "CheckpointError" in other.stderr and f"in use by process {os.getpid()}" in other.stderr
    runs.release_run_dir(run)
    assert not (run / ".lock").exists()
    with pytest.raises(CheckpointError, match="already has checkpoints"):
        (run / "checkpoints/step_00000001").mkdir(parents=True)
        runs.claim_run_dir(run, None)


@pytest.mark.parametrize(
    "override, words",
    [
        ("trainer.max_steps=0", "trainer.max_steps=0: must be a positive"),
        ("trainer.max_steps=-3", "trainer.max_steps=-3: must be a positive"),
        ("trainer.grad_accum=0", "trainer.grad_accum=0"),
        ("trainer.batch_size=0", "trainer.batch_size=0"),
        ("sample_rate=0", "sample_rate=0"),
        ("trainer.checkpoint_every=0", "trainer.checkpoint_every=0"),
        ("trainer.log_every=-1", "trainer.log_every=-1: must be >= 0"),
        ("trainer.demo_every=-1", "trainer.demo_every=-1"),
        ("trainer.val_every=-1", "trainer.val_every=-1"),
        ("trainer.precision=fp8", "trainer.precision=fp8: must be one of no, fp16, bf16"),
        ("optim.generator.optimizer.lr=-1e-4", "optim.generator.optimizer.lr=-0.0001"),
        ("data=audio_dir", "data.path is required"),  # with "for data=audio_dir" under Hydra
        ("latent_dim=0", "latent_dim=0: must be a positive integer"),
        ("io_channels=0", "io_channels=0: must be a positive integer"),
        ("out_channels=0", "out_channels=0: must be a positive integer"),
        ("optim.generator.optimizer.lr=abc", "lr=abc: a learning rate must be a number >= 0"),
        ("optim.discriminator.optimizer.lr=true", "lr=True: a learning rate must be a number"),
        (
            "trainer.demo_every=50 trainer.num_demos=0",
            "trainer.num_demos=0 with trainer.demo_every=50: trainer.num_demos must be >= 1 "
            "(or trainer.demo_every=0 turns them off)",
        ),
        (
            "trainer.val_every=1 trainer.val_batches=0",
            "trainer.val_batches=0 with trainer.val_every=1: trainer.val_batches must be >= 1",
        ),
        ("trainer.val_batches=-1", "trainer.val_batches=-1 with trainer.val_every=0"),
        (
            "trainer.max_nonfinite=0",
            "trainer.max_nonfinite=0: must be a positive integer (consecutive non-finite steps "
            "that stop the run; 1: the first)",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_key(override, words):
    from audioae import schema
    from audioae.errors import ConfigError
    from conftest import compose_train

    with pytest.raises(ConfigError) as e:
        schema.check(compose_train(*FAST, *override.split()))
    assert words in str(e.value)


def test_accepted_values_pass_the_check():
    from audioae import schema
    from conftest import compose_train

    # demos and validation off need no counts; 1 non-finite step stops the run
    off = ("trainer.num_demos=0", "trainer.val_batches=0", "trainer.max_nonfinite=1")
    schema.check(compose_train(*FAST, *off, "optim.generator.optimizer.lr=0"))


@pytest.mark.parametrize(
    "override, words",
    [
        ("trainer.max_steps=0", "trainer.max_steps=0: must be a positive"),
        ("sample_rate=0", "sample_rate=0: must be a positive"),
        ("data=audio_dir", "data.path is required for data=audio_dir"),
    ],
)
def test_bad_values_are_one_line_at_start_up(tmp_path, override, words):
    run = tmp_path / "run"
    line = one_line_error(train(run, override, cwd=tmp_path))
    assert words in line, line
    assert not (run / "checkpoints").exists() and not (run / "config.yaml").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (
            ["trainer.max_step=3"],
            "trainer.max_step=3: there is no config key trainer.max_step; "
            "did you mean trainer.max_steps?",
        ),
        (["bottlenek=vae"], "did you mean bottleneck?"),
        (
            ["experiment=smok"],
            "Could not find 'experiment/smok'; Available options in "
            "'experiment': dac_2048_32_vae, encodec_musicgen_rvq",
        ),
        (
            ["trainer.max_steps=abc"],
            "trainer.max_steps=abc: Value 'abc' of type 'str' could not be converted to Integer",
        ),
        (["trainer.max_steps=[1"], "cannot parse the overrides"),
        (["bottleneck=vae,tanh"], "To sweep over it, add --multirun"),
        (["-m", "bottleneck=vae,vea"], "Could not find 'bottleneck/vea'"),  # every sweep value
        (["-m", "trainer.max_steps=1,2", "encoder.foo=1"], "no config key encoder.foo"),
    ],
)
def test_hydra_override_errors_are_one_line_before_anything_is_written(tmp_path, args, words):
    """Typos Hydra itself reports in several lines with status 1 (composition errors)."""
    run, sweep = tmp_path / "run", tmp_path / "sweep"
    proc = run_cli(
        "audioae-train", *FAST, f"hydra.run.dir={run}", f"hydra.sweep.dir={sweep}", *args,
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert words in one_line_error(proc)
    assert not run.exists() and not sweep.exists()


def test_overrides_that_compose_pass_the_check():
    from audioae.config import check_overrides

    check_overrides(["experiment=smoke", "+trainer.extra=1", "~pretransform", "hydra.verbose=true"])
    check_overrides(["-m", "bottleneck=vae,tanh", "trainer.max_steps=range(1,3)"])
    check_overrides(["--cfg", "job", "trainer.max_step=1"])  # Hydra's own modes: left to Hydra


FULL_DISK = """
import sys, torch
real_save = torch.save
def full_disk(obj, path, *args, **kwargs):
    if "step_00000002" in str(path):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64\\n"
                           "PytorchStreamWriter failed writing file: No space left on device")
    real_save(obj, path, *args, **kwargs)
torch.save = full_disk  # what Accelerate's save_state and runs.save_checkpoint call
from audioae.cli.train import main
sys.argv = ["audioae-train", *sys.argv[1:]]
main()
"""


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_previous_checkpoint(tmp_path):
    run = tmp_path / "run"
    args = [*FAST, "trainer.max_steps=3", "trainer.checkpoint_every=1", f"hydra.run.dir={run}"]
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    line = one_line_error(proc)
    assert "cannot write checkpoint" in line and "step_00000002" in line
    assert line.endswith("No space left on device; earlier checkpoints are kept"), line
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000001"]
    from audioae.runs import find_checkpoint

    assert find_checkpoint(run).name == "step_00000001"


def test_resume_auto_passes_over_empty_and_truncated_step_folders(run, tmp_path):
    ckpts = run / "checkpoints"
    (ckpts / "step_00000003").mkdir()  # empty
    truncated = ckpts / "step_00000004"
    shutil.copytree(ckpts / "step_00000002", truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    kept = snapshot(truncated)
    proc = train(run, "trainer.max_steps=3", "resume=auto", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    said = proc.stdout + proc.stderr
    for folder in (truncated, ckpts / "step_00000003"):
        assert f"{folder} is empty, incomplete or truncated: passed over" in said
        assert f"{folder} is damaged: moved to {folder.name}.damaged, so that" in said  # issue 32
    assert f"resumed from {ckpts / 'step_00000002'} at step 2" in (run / "train.log").read_text()
    assert (ckpts / "step_00000003/model.safetensors").exists()
    assert snapshot(ckpts / "step_00000004.damaged") == kept  # set aside, never deleted


def test_resuming_with_another_model_shape_is_refused_before_writing(run, tmp_path):
    before = snapshot(run)
    proc = train(run, "resume=auto", "trainer.max_steps=3", "encoder.channels=16", cwd=tmp_path)
    line = one_line_error(proc)
    assert "another model shape: decoder.channels (8 -> 16), encoder.channels (8 -> 16);" in line
    assert "trainer.max_steps" not in line  # allowed changes are not the error
    assert snapshot(run) == before


def test_resuming_with_other_settings_records_them_beside_the_config(run, tmp_path):
    before = snapshot(run)
    lr = "optim.generator.optimizer.lr"
    proc = train(run, "resume=auto", "trainer.max_steps=3", f"{lr}=1e-4", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    said = proc.stdout + proc.stderr
    assert f"{lr}: 0.00015 -> 0.0001" in said and "trainer.max_steps: 2 -> 3" in said
    after = snapshot(run)
    assert {k: after[k] for k in before} == before  # config.yaml and both checkpoints kept
    from omegaconf import OmegaConf

    recorded = OmegaConf.load(run / "config.resume-step_00000002.yaml")
    assert recorded.optim.generator.optimizer.lr == 1e-4 and recorded.trainer.max_steps == 3
    assert OmegaConf.load(run / "config.yaml").optim.generator.optimizer.lr == 1.5e-4
    assert (run / "checkpoints/step_00000003/model.safetensors").exists()
