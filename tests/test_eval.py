"""`audioae-eval` on a tiny trained run and generated files, through the real entry point."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioae.cli.eval import default_out, main
from conftest import run_cli

pytestmark = pytest.mark.slow

# (relative path, sample rate, channels, seconds): other rates and channel counts than the
# model's (44.1 kHz stereo) exercise resampling and channel conversion.
FILES = [
    ("speech/a.wav", 16000, 1, 0.5),
    ("speech/b.flac", 22050, 2, 0.4),
    ("music/c.wav", 44100, 2, 0.6),
    ("music/d.flac", 48000, 1, 0.3),
]
CONDITIONS = ["model", "identity", "lowpass4k", "lowpass8k"]
METRICS = ["si_sdr", "mel", "stft"]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Train two smoke steps at 44.1 kHz, write broadband test files, run audioae-eval."""
    tmp = tmp_path_factory.mktemp("eval")
    run = tmp / "run"
    run_cli(
        "audioae-train",
        "experiment=smoke",
        "sample_rate=44100",
        "trainer.max_steps=2",
        f"hydra.run.dir={run}",
        cwd=tmp,
    )
    rng = np.random.default_rng(0)
    for name, rate, channels, seconds in FILES:
        path = tmp / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        # white noise: energy at every frequency, so each low-pass removes a known band
        sf.write(path, 0.2 * rng.standard_normal((round(rate * seconds), channels)), rate)
    # 2048 latent frames (16384 samples): two chunks for most files, few network calls
    proc = run_cli("audioae-eval", str(run), str(tmp / "data"), "--chunk-size", "2048", cwd=tmp)
    return tmp, proc


def test_prints_a_table_pairing_si_sdr_with_the_distances(evaluated):
    _, proc = evaluated
    out = proc.stdout
    for text in ["SI-SDR dB", "mel dist", "STFT dist", "overall (4)", "music (2)", "speech (2)"]:
        assert text in out
    for name, *_ in FILES:
        assert name in out
    assert "a silent output scores 0 dB" in out
    assert "ViSQOL" in out  # computed, or a note saying why not


def test_writes_json_and_csv_with_a_row_per_file_and_condition(evaluated):
    tmp, _ = evaluated
    out = tmp / "eval_run"  # the default: ./eval_<checkpoint name>
    report = json.loads((out / "results.json").read_text())
    files = {f["file"]: f for f in report["files"]}
    assert sorted(files) == sorted(name for name, *_ in FILES)
    for name, rate, channels, seconds in FILES:
        entry = files[name]
        assert entry["folder"] == str(Path(name).parent)
        assert (entry["file_sample_rate"], entry["file_channels"]) == (rate, channels)
        assert entry["seconds"] == pytest.approx(seconds, abs=1 / rate + 1 / 44100)
        for cond in CONDITIONS:
            assert set(entry[cond]) - {"visqol"} == set(METRICS)  # visqol when installed
    assert report["model"]["sample_rate"] == 44100
    assert set(report["conditions"]) == set(CONDITIONS)

    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    per_file = [r for r in rows if r["scope"] == "file"]
    assert len(per_file) == len(FILES) * len(CONDITIONS)
    for r in per_file:
        for k in METRICS:
            assert float(r[k]) == pytest.approx(files[r["name"]][r["condition"]][k], rel=1e-9)
    assert {r["name"] for r in rows if r["scope"] == "folder"} == {"music", "speech"}


def test_means_are_the_means_of_the_files(evaluated):
    tmp, _ = evaluated
    report = json.loads((tmp / "eval_run" / "results.json").read_text())
    for folder, agg in [("", report["means"]["overall"]), *report["means"]["folders"].items()]:
        members = [f for f in report["files"] if f["file"].startswith(folder)]
        assert agg["files"] == len(members) == (4 if folder == "" else 2)
        for cond in CONDITIONS:
            for k in METRICS:
                expected = np.mean([f[cond][k] for f in members])
                assert agg[cond][k] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        # input dependence, over the consecutive pairs of files (evaluate.Dependence)
        assert agg["identity"]["dependence"] == pytest.approx(1.0)
        assert 0 < agg["lowpass4k"]["dependence"] < 1.5
        assert agg["model"]["dependence"] >= 0
    with (tmp / "eval_run" / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["dependence"] for r in rows if r["scope"] == "file"} == {""}
    overall = {r["condition"]: r["dependence"] for r in rows if r["scope"] == "overall"}
    assert float(overall["identity"]) == pytest.approx(1.0)


def test_reference_conditions_give_the_scale(evaluated):
    tmp, _ = evaluated
    report = json.loads((tmp / "eval_run" / "results.json").read_text())
    for f in report["files"]:
        assert f["identity"]["si_sdr"] > 100
        assert f["identity"]["mel"] == 0 and f["identity"]["stft"] == 0
        assert f["lowpass4k"]["mel"] > f["lowpass8k"]["mel"] > 0
        assert f["lowpass4k"]["stft"] > f["lowpass8k"]["stft"] > 0
        assert f["lowpass4k"]["si_sdr"] < f["lowpass8k"]["si_sdr"]


def test_visqol_is_none_for_clips_too_short_to_score(evaluated):
    """ViSQOL scores 0.96 s or more; every file here is shorter: null, not a crash."""
    from audioae.metrics import visqol_available

    if not visqol_available():
        pytest.skip("visqol-python not installed (the [dev] extra has it)")
    tmp, proc = evaluated
    report = json.loads((tmp / "eval_run" / "results.json").read_text())
    assert all(f[cond]["visqol"] is None for f in report["files"] for cond in CONDITIONS)
    assert all(report["means"]["overall"][cond]["visqol"] is None for cond in CONDITIONS)
    assert "ViSQOL: none for 4 file(s) under 0.96 s" in proc.stdout
    with (tmp / "eval_run" / "results.csv").open() as f:
        assert {r["visqol"] for r in csv.DictReader(f)} == {"", "nan"}  # file rows, means


def fails(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("audioae-eval: ") and "Traceback" not in err
    return err


def test_errors_are_one_line_and_exit_2(evaluated, capsys, tmp_path):
    tmp, _ = evaluated
    run, data = str(tmp / "run"), str(tmp / "data")
    assert "no such file or directory" in fails(capsys, run, str(tmp / "missing.wav"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    assert "no audio files" in fails(capsys, run, str(tmp_path / "empty"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.yaml").write_text((tmp / "run" / "config.yaml").read_text())
    (bad / "model.safetensors").write_bytes(b"not weights")
    assert "safetensors" in fails(capsys, str(bad), data, "--out", str(tmp_path / "o"))
    assert "not a model" in fails(capsys, str(tmp_path / "empty"), data)
    assert "unknown condition" in fails(capsys, run, data, "--conditions", "highpass2k")
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    assert "cannot read audio" in fails(capsys, run, str(tmp_path / "broken.wav"))
    # an OSError (here: --out is a file) is one line too, as in every command (cli/common.py)
    (tmp_path / "taken").write_text("")
    wav = str(tmp / "data" / FILES[0][0])
    err = fails(capsys, run, wav, "--out", str(tmp_path / "taken"), "--chunk-size", "0")
    assert "taken" in err and len(err.strip().splitlines()) == 1
    # --chunk-size below twice the default overlap lowers the overlap, as audioae-encode does
    report = tmp_path / "small" / "results.json"
    main([run, wav, "--out", str(report.parent), "--chunk-size", "40", "--no-visqol"])
    assert (
        json.loads(report.read_text())["chunk_size"],
        json.loads(report.read_text())["overlap"],
    ) == (40, 20)


def test_default_output_folder_names_the_run_and_step(tmp_path):
    ckpt = tmp_path / "myrun" / "checkpoints" / "step_00000002"
    ckpt.mkdir(parents=True)
    assert default_out(str(ckpt)) == Path("eval_myrun_step_00000002")
    assert default_out(str(tmp_path / "myrun")) == Path("eval_myrun")
