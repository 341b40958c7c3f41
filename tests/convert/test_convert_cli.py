"""`audioae-convert` as a user runs it: one line out, one line on failure, status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from audioae.cli.convert import main
from audioae.convert import SATConversionWarning, config_to_sat, convert, load_json, preset
from conftest import run_cli

CONFIGS = Path(__file__).parent / "fixtures" / "configs"
BIN = Path(sys.executable).parent

# Smoke sizes on top of the converted overrides (later overrides win): tiny widths, two
# strides, short crops and STFTs, two steps.
SMOKE = [
    "encoder.d_model=4",
    "encoder.strides=[2,4]",
    "decoder.channels=16",
    "decoder.rates=[4,2]",
    "latent_dim=4",
    "sample_size=2048",
    "discriminator.filters=4",
    "discriminator.n_ffts=[256,64]",
    "discriminator.hop_lengths=[64,16]",
    "discriminator.win_lengths=[256,64]",
    "loss.terms.spectral.fft_sizes=[256,64]",
    "loss.terms.spectral.hop_sizes=[64,16]",
    "loss.terms.spectral.win_lengths=[256,64]",
    "trainer.max_steps=2",
    "trainer.batch_size=2",
    "trainer.log_every=1",
    "trainer.checkpoint_every=2",
]


def cli(*args: str, capsys) -> tuple[int, str, str]:
    """audioae-convert ARGS in this process (the real entry point, without the start-up)."""
    try:
        main(list(args))
        status = 0
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """`command` in bash, with this environment's console scripts first on PATH."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONWARNINGS": "ignore",
    }
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_prints_one_line_of_overrides(capsys):
    status, out, err = cli(str(CONFIGS / "stable_audio_2_0_vae.json"), capsys=capsys)
    lines = out.splitlines()
    assert status == 0 and len(lines) == 1 and err == ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SATConversionWarning)
        expected = convert(load_json(CONFIGS / "stable_audio_2_0_vae.json")).overrides
    assert lines[0].split() == expected  # captured output: no shell quotes
    assert lines[0].startswith("encoder=oobleck bottleneck=vae loss=mrstft_gan")


def test_quote_makes_a_line_to_paste(capsys):
    _, out, _ = cli(str(CONFIGS / "dac_2048_32_vae.json"), "--quote", capsys=capsys)
    assert "'encoder.strides=[4,8,8,8]'" in out.split()


@pytest.mark.slow
def test_printed_overrides_train_two_steps(tmp_path, capsys):
    """audioae-train $(audioae-convert dac_2048_32_vae.json) plus smoke sizes, in a real shell;
    then --to-json on the run."""
    extra = " ".join(f"'{o}'" for o in [*SMOKE, f"hydra.run.dir={tmp_path}/run"])
    source = CONFIGS / "dac_2048_32_vae.json"
    proc = shell(f"audioae-train $(audioae-convert {source}) {extra}", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "run"
    cfg = OmegaConf.load(run / "config.yaml")
    assert cfg.trainer.max_steps == 2 and cfg.loss.adversarial and cfg.io_channels == 1
    assert list(cfg.discriminator.stride) == [1, 1] and cfg.bottleneck.loss_weights.kl == 1e-6

    out = tmp_path / "back.json"
    status, _, _ = cli("--to-json", str(run), "--out", str(out), capsys=capsys)
    back = json.loads(out.read_text())
    assert status == 0 and back["sample_size"] == 2048 and back["model"]["latent_dim"] == 4
    assert back["model"]["encoder"]["config"]["strides"] == [2, 4]
    assert back["training"]["loss_configs"]["discriminator"]["config"]["filters"] == 4


def test_to_json_writes_stdout(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SATConversionWarning)
        cfg = convert(load_json(CONFIGS / "stable_audio_1_0_vae.json")).cfg
    OmegaConf.save(cfg, tmp_path / "config.yaml", resolve=True)
    status, out, _ = cli("--to-json", str(tmp_path), capsys=capsys)
    assert status == 0 and json.loads(out) == config_to_sat(cfg)


def test_experiment_writes_the_preset(tmp_path, capsys):
    out = tmp_path / "presets"
    source = CONFIGS / "encodec_musicgen_rvq.json"
    args = [str(source), "--experiment", "my_musicgen", "--out", str(out)]
    status, printed, _ = cli(*args, capsys=capsys)
    assert status == 0
    assert printed.split() == [
        f"hydra.searchpath=[file://{out}]",
        "experiment=my_musicgen",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SATConversionWarning)
        expected = preset(convert(load_json(source), str(source)), "my_musicgen")
    written = out / "experiment" / "my_musicgen.yaml"
    assert written.read_text() == expected
    written.write_text("# edited\n")
    status, _, err = cli(*args, capsys=capsys)
    assert status == 2 and "--force" in err and written.read_text() == "# edited\n"
    assert cli(*args, "--force", capsys=capsys)[0] == 0 and written.read_text() == expected


@pytest.mark.slow
def test_the_printed_experiment_override_composes(tmp_path):
    """From a fresh folder, as a user of an installed package would: the preset goes to
    ./experiments/, not into the package, and the printed overrides select it in audioae-train."""
    source = CONFIGS / "dac_2048_32_vae.json"
    proc = run_cli("audioae-convert", str(source), "--experiment", "my_dac", cwd=tmp_path)
    written = tmp_path / "experiments" / "experiment" / "my_dac.yaml"
    assert proc.stderr == f"wrote {written}\n" and written.is_file()
    overrides = proc.stdout.split()
    assert overrides == [f"hydra.searchpath=[file://{tmp_path}/experiments]", "experiment=my_dac"]
    job = run_cli("audioae-train", *overrides, "--cfg", "job", cwd=tmp_path)
    cfg = OmegaConf.create(job.stdout)
    assert list(cfg.encoder.strides) == [4, 8, 8, 8] and cfg.latent_dim == 32
    assert cfg.io_channels == 1 and cfg.sample_size == 65536 and cfg.loss.adversarial
    assert not (tmp_path / "outputs").exists()  # --cfg job runs nothing

    # a second conversion refuses to overwrite it
    again = run_cli(
        "audioae-convert", str(source), "--experiment", "my_dac", cwd=tmp_path, check=False
    )
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "--force" in again.stderr


def test_a_missing_experiment_is_an_error_not_the_default(tmp_path):
    proc = run_cli(
        "audioae-train", "experiment=no_such_preset", "--cfg", "job", cwd=tmp_path, check=False
    )
    assert proc.returncode != 0 and proc.stdout == ""
    assert "Could not find 'experiment/no_such_preset'" in proc.stderr


def one_line_error(result) -> str:
    status, out, err = result
    assert status == 2, out
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("audioae-convert: "), err
    return lines[0]


def write(tmp_path: Path, config) -> str:
    path = tmp_path / "model_config.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return str(path)


def test_errors_are_one_line_with_status_2(tmp_path, capsys):
    def error(*args):
        return one_line_error(cli(*args, capsys=capsys))

    config = load_json(CONFIGS / "stable_audio_2_0_vae.json")
    config["model"]["bottleneck"]["config"] = {"foo": 1}
    line = error(write(tmp_path, config))
    assert "model_config.json: model.bottleneck.config.foo: unknown key; supported: none" in line

    assert "invalid JSON at line 1, column 16" in error(write(tmp_path, '{"model_type": }'))

    config["model"]["bottleneck"]["config"] = {}
    config["model"]["encoder"]["config"]["strides"] = "2,4,4,8,8"
    line = error(write(tmp_path, config))
    assert "model.encoder.config.strides: expected a list of integers" in line

    del config["model"]["encoder"]["config"]["strides"]
    del config["model"]["io_channels"]
    assert "model.io_channels: missing required key" in error(write(tmp_path, config))

    for args in ([str(tmp_path / "missing.json")], [], ["--bogus"], ["--to-json", "nowhere"]):
        error(*args)


def test_an_installed_script_fails_without_a_traceback(tmp_path):
    proc = run_cli("audioae-convert", write(tmp_path, "[1, 2]"), cwd=tmp_path, check=False)
    line = one_line_error((proc.returncode, proc.stdout, proc.stderr))
    assert "expected a JSON object" in line


def test_lenient_prints_one_warning_per_key(tmp_path, capsys):
    config = load_json(CONFIGS / "stable_audio_2_0_vae.json")
    config["model"]["bottleneck"]["config"] = {"foo": 1}
    config["training"]["batch_size"] = 16
    status, out, err = cli(write(tmp_path, config), "--lenient", capsys=capsys)
    warned = err.splitlines()
    assert status == 0 and len(out.splitlines()) == 1
    assert len(warned) == 2 and all(w.startswith("audioae-convert: warning: ") for w in warned)
