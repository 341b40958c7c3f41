"""Issue 32, training side: what audioae-train takes as a run folder, resuming an older or a
damaged checkpoint, settings changed on resume, the precision that ran, held-out data, and bad
values, all through the real `audioae-train` (and `audioae-export`)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from conftest import run_cli, scalars
from inference.inference_helpers import single_threaded_subprocesses, tone
from test_trust_train import one_line_error, snapshot

pytestmark = pytest.mark.slow
SMOKE = ("experiment=smoke", "trainer.demo_every=0")


def train(run: Path, *args: str, cwd: Path):
    with single_threaded_subprocesses():
        return run_cli("audioae-train", *SMOKE, f"hydra.run.dir={run}", *args, cwd=cwd, check=False)


def said(proc) -> str:
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished tiny run: checkpoints and demos at steps 2 and 4."""
    tmp = tmp_path_factory.mktemp("trained")
    demos = ("trainer.demo_every=2", "trainer.num_demos=1")
    proc = train(tmp / "run", "trainer.max_steps=4", "trainer.checkpoint_every=2", *demos, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return tmp / "run"


@pytest.fixture
def run(trained, tmp_path) -> Path:
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


# --- what a run folder is -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "files, named",
    [
        ({"model_config.json": "{}", "model.ckpt": "x"}, "model.ckpt, model_config.json"),
        ({"notes.txt": "mine"}, "notes.txt"),
    ],
    ids=["sat_model", "other_files"],
)
def test_a_folder_that_is_not_a_run_is_refused_as_a_run_dir(tmp_path, files, named):
    folder = tmp_path / "folder"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    before = snapshot(folder, hydra=True)
    line = one_line_error(train(folder, "trainer.max_steps=1", cwd=tmp_path))
    assert f"{folder} is not an audioae run folder (it holds {named}," in line
    assert snapshot(folder, hydra=True) == before  # refused before Hydra writes .hydra/


def test_training_into_a_real_export_is_refused(run, tmp_path):
    exp = tmp_path / "exp"
    run_cli("audioae-export", str(run), "--out", str(exp), cwd=tmp_path)
    before = snapshot(exp, hydra=True)
    line = one_line_error(train(exp, "trainer.max_steps=1", cwd=tmp_path))
    assert "is not an audioae run folder (it holds model.safetensors" in line
    assert snapshot(exp, hydra=True) == before


@pytest.mark.parametrize("where", [".", "checkpoints/step_00000002"])
def test_exporting_into_a_run_or_checkpoint_folder_is_refused(run, tmp_path, where):
    before = snapshot(run, hydra=True)
    out = run / where
    proc = run_cli(
        "audioae-export", str(run), "--out", str(out), "--force", cwd=tmp_path, check=False
    )
    line = one_line_error(proc)
    assert f"--out {out}: a run or checkpoint folder" in line
    assert snapshot(run, hydra=True) == before


# --- resuming an older or a damaged checkpoint --------------------------------------------------


def test_resuming_an_older_checkpoint_of_the_run_is_refused_before_anything_is_written(
    run, tmp_path
):
    older = run / "checkpoints/step_00000002"
    before = snapshot(run, hydra=True)
    proc = train(run, f"resume={older}", "trainer.max_steps=6", cwd=tmp_path)
    line = one_line_error(proc)
    assert f"{run} has checkpoints newer than {older}: step_00000004;" in line
    assert f"resume={older} hydra.run.dir=NEW" in line
    assert snapshot(run, hydra=True) == before  # demos, tb, checkpoints: all kept
    branch = tmp_path / "branch"  # what the message says works
    proc = train(branch, f"resume={older}", "trainer.max_steps=3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"resumed from {older} at step 2" in (branch / "train.log").read_text()
    assert (branch / "checkpoints/step_00000003/model.safetensors").exists()
    assert snapshot(run, hydra=True) == before


def test_a_truncated_newest_checkpoint_is_set_aside_and_its_step_saved_again(run, tmp_path):
    newest = run / "checkpoints/step_00000004"
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    damaged = snapshot(newest)
    proc = train(run, "resume=auto", "trainer.max_steps=4", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    aside = run / "checkpoints/step_00000004.damaged"
    assert f"{newest} is damaged: moved to step_00000004.damaged, so that" in said(proc)
    assert snapshot(aside) == damaged  # kept as it was, never deleted
    from audioae.runs import is_readable, resume_from

    assert is_readable(newest) and resume_from("auto", run) == newest  # saved again


# --- settings changed on resume -----------------------------------------------------------------


def optimizer_groups(checkpoint: Path) -> list[dict]:
    state = torch.load(checkpoint / "optimizer.bin", weights_only=True)
    return state["param_groups"]


def test_optimizer_settings_changed_on_resume_are_the_ones_used(run, tmp_path):
    """lr=0 freezes the weights on the first resumed step (AdamW's weight decay too scales
    with lr); betas and weight decay are the config's in the saved optimizer state."""
    opt = "optim.generator.optimizer"
    proc = train(
        run, "resume=auto", "trainer.max_steps=5", f"{opt}.lr=0", f"{opt}.betas=[0.5,0.9]",
        f"{opt}.weight_decay=0.01", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"{opt}.lr: 0.00015 -> 0" in said(proc)
    before = load_file(run / "checkpoints/step_00000004/model.safetensors")
    after = load_file(run / "checkpoints/step_00000005/model.safetensors")
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert scalars(run, "lr/generator")[5] == 0.0
    groups = optimizer_groups(run / "checkpoints/step_00000005")
    assert [(g["lr"], tuple(g["betas"]), g["weight_decay"]) for g in groups] == [
        (0.0, (0.5, 0.9), 0.01)
    ]


def test_a_scheduler_changed_on_resume_keeps_its_step_and_takes_the_new_settings(tmp_path):
    run = tmp_path / "run"
    proc = train(run, "optim=adamw_inverse", "trainer.max_steps=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sched = "optim.generator.scheduler"
    proc = train(
        run, "optim=adamw_inverse", "resume=auto", "trainer.max_steps=3",
        "optim.generator.optimizer.lr=0.05", f"{sched}.warmup=0.5", f"{sched}.inv_gamma=10",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    def inverse(t: int, lr: float = 0.05, warmup: float = 0.5, inv_gamma: float = 10) -> float:
        return (1 - warmup ** (t + 1)) * lr * (1 + t / inv_gamma) ** -0.5

    # the lr after 3 updates (logged at step 3); the first resumed step used inverse(2)
    assert scalars(run, "lr/generator")[3] == pytest.approx(inverse(3), rel=1e-6)
    state = torch.load(run / "checkpoints/step_00000003/state.pt", weights_only=True)
    saved = state["schedulers"]["generator"]
    assert saved["last_epoch"] == 3 and saved["base_lrs"] == [0.05]
    assert (saved["warmup"], saved["inv_gamma"]) == (0.5, 10)
    assert optimizer_groups(run / "checkpoints/step_00000003")[0]["lr"] == pytest.approx(
        inverse(3), rel=1e-6
    )


# --- precision, held-out data, bad values -------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 runs as fp16 on a GPU")
def test_fp16_on_a_cpu_warns_and_records_the_precision_that_ran(tmp_path):
    run = tmp_path / "run"
    proc = train(run, "trainer.max_steps=1", "trainer.precision=fp16", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    warned = [x for x in said(proc).splitlines() if "trainer.precision=fp16" in x]
    assert len(warned) == 1 and "not supported on a CPU: training in fp32" in warned[0]
    for config in (run / "config.yaml", run / "checkpoints/step_00000001/config.yaml"):
        assert OmegaConf.load(config).trainer.precision == "no"


@pytest.fixture(scope="module")
def music(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("music")
    (folder / "live").mkdir()
    for i, name in enumerate(["a.wav", "b.wav", "c.wav", "live/d.wav"]):
        tone(folder / name, 16000, 2, 0.3, 220.0 * (i + 1))
    return folder


def test_validation_on_training_files_is_refused_before_writing(music, tmp_path):
    run = tmp_path / "run"
    proc = train(
        run, "data=audio_dir", f"data.path={music}", f"trainer.val_path={music}",
        "trainer.val_every=1", "trainer.max_steps=1", cwd=tmp_path,
    )  # fmt: skip
    line = one_line_error(proc)
    assert re.search(rf"trainer.val_path={music}: \d of its 4 files are training files of ", line)
    assert f"data.path={music}" in line and "would not be held out" in line
    assert not (run / "config.yaml").exists() and not (run / "checkpoints").exists()


def test_a_val_path_inside_data_path_is_refused_when_it_holds_training_files(music):
    from audioae.build import build
    from audioae.errors import ConfigError
    from audioae.train.validate import held_out_data
    from conftest import compose_train

    overrides = ("data=audio_dir", f"data.path={music}", "data.holdout=0")
    cfg = compose_train(*SMOKE, *overrides, f"trainer.val_path={music / 'live'}")
    with pytest.raises(ConfigError, match=r"live: 1 of its 1 files are training files of data"):
        held_out_data(cfg, build(cfg.data, "data"))


@pytest.mark.parametrize(
    "overrides, words",
    [
        (
            ["optim.generator.optimizer.lr=abc"],
            "optim.generator.optimizer.lr=abc: a learning rate must be a number >= 0",
        ),
        (
            ["freeze=[encoder,decoder,bottleneck]"],
            "freeze=[encoder, decoder, bottleneck] leaves no parameter to train: freeze fewer "
            "of encoder, decoder, bottleneck",
        ),
    ],
    ids=["lr", "freeze"],
)
def test_bad_values_are_one_line_naming_the_key_and_the_allowed_values(tmp_path, overrides, words):
    """The command's side of test_trust_train's test_bad_values_are_refused_naming_the_key:
    the checks of the config (schema.check) and of the model (build_training)."""
    run = tmp_path / "run"
    line = one_line_error(train(run, "trainer.max_steps=1", *overrides, cwd=tmp_path))
    assert words in line and "unexpected error" not in line, line
    assert not (run / "config.yaml").exists() and not (run / "checkpoints").exists()
