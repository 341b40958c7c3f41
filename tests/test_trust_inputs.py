"""Issue 32, the commands other than training's own code: inputs that used to pass silently,
hang, or end in a traceback, through the real console scripts. Each refusal is one line on
stderr naming the bad thing, status 2; each warning one line."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

import test_trust_commands as trust
from conftest import compose_train
from inference.inference_helpers import smoke_model, tone, trained_run

pytestmark = pytest.mark.slow  # real commands, a second each at least
FAST = trust.FAST
CONFIGS = Path(__file__).parent / "convert" / "fixtures" / "configs"
LONG = "x" * 300  # longer than any file system's name limit (255)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    return tone(tmp_path_factory.mktemp("audio") / "a.wav", 16000, 2, 0.5)


def cli(command: str, *args: str, cwd: Path):
    return trust.cli(command, *args, cwd=cwd)


def one_line_error(proc, *needles: str) -> str:
    return trust.one_line_error(proc, *needles)


def warnings_of(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if ": warning: " in line]


def bounded(command: str, *args: str, cwd: Path, seconds: float = 240):
    """A console script that must finish: a hang is a TimeoutExpired, not a stuck test run."""
    exe = Path(sys.executable).with_name(command)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
        "HYDRA_FULL_ERROR": "0",
    }
    return subprocess.run(
        [str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=seconds
    )


def export_of(state: dict, cfg, folder: Path) -> Path:
    """An export-like folder (config.yaml + model.safetensors) for a state dict."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")
    OmegaConf.save(cfg, folder / "config.yaml", resolve=True)
    return folder


def peak_hz(path: Path) -> float:
    data, rate = sf.read(str(path), always_2d=True)
    spectrum = np.abs(np.fft.rfft(data.mean(axis=1) * np.hanning(len(data))))
    return float(np.fft.rfftfreq(len(data), 1 / rate)[spectrum.argmax()])


# --- 7. a converted preset named like a built-in one --------------------------------------------


def test_convert_refuses_a_preset_name_of_a_built_in_preset(tmp_path):
    source = str(CONFIGS / "small_wavelet.json")
    proc = cli("audioae-convert", source, "--experiment", "smoke", "--out", "P", cwd=tmp_path)
    one_line_error(proc, "--experiment smoke", "built-in", "choose another name")
    assert not (tmp_path / "P").exists() and proc.stdout == ""
    proc = cli("audioae-convert", source, "--experiment", "my_smoke", "--out", "P", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "experiment=my_smoke"
    assert (tmp_path / "P" / "experiment" / "my_smoke.yaml").is_file()


# --- 8. a manifest's file rewritten at another rate ---------------------------------------------


def test_a_file_rewritten_after_the_manifest_is_read_at_its_real_rate(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.wav", "b.wav"):
        tone(data / name, 16000, 2, 1.0, freq=1000.0)
    assert cli("audioae-manifest", str(data), "--out", "m.jsonl", cwd=tmp_path).returncode == 0
    for name in ("a.wav", "b.wav"):  # the same 1 kHz tone, now at 48 kHz
        tone(data / name, 48000, 2, 1.0, freq=1000.0)
    proc = cli(
        "audioae-train", "experiment=smoke", "data=audio_dir", f"data.path={data}",
        f"data.manifest={tmp_path / 'm.jsonl'}", "trainer.max_steps=1", "trainer.demo_every=1",
        "trainer.num_demos=1", "hydra.run.dir=run", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (real,) = (tmp_path / "run" / "demos").glob("*/0_real.wav")
    assert abs(peak_hz(real) - 1000.0) < 20  # read as 16 kHz it was a 333 Hz tone
    changed = [w for w in warnings_of(proc) if "changed since it was listed" in w]
    assert changed and "now 48000 frames at 48000 Hz" in changed[0]
    assert "listed: 16000 at 16000 Hz" in changed[0]


# --- 10. non-finite weights and latents ---------------------------------------------------------


@pytest.fixture(scope="module")
def nan_model(run, tmp_path_factory):
    """The run's weights with one NaN in a decoder weight, as an export-like folder."""
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    state = load_file(ckpt / "model.safetensors")
    key = sorted(k for k in state if k.startswith("decoder.") and k.endswith("weight_v"))[0]
    state[key] = state[key].clone()
    state[key].view(-1)[3] = math.nan
    cfg = OmegaConf.load(ckpt / "config.yaml")
    return export_of(state, cfg, tmp_path_factory.mktemp("nan") / "model"), key


@pytest.mark.parametrize("command", ["audioae-reconstruct", "audioae-export"])
def test_a_nan_weight_is_refused_naming_the_tensor(nan_model, wav, tmp_path, command):
    model, key = nan_model
    args = [str(wav), *FAST] if command == "audioae-reconstruct" else []
    proc = cli(command, str(model), *args, "--out", str(tmp_path / "o"), cwd=tmp_path)
    one_line_error(proc, str(model / "model.safetensors"), f"weight {key}", "1 NaN")
    assert not (tmp_path / "o").exists()


def test_latents_with_a_nan_are_refused_naming_the_file(run, wav, tmp_path):
    lat = tmp_path / "lat"
    assert cli("audioae-encode", str(run), str(wav), "--out", str(lat), *FAST, cwd=tmp_path)
    latents = load_file(lat / "a.safetensors")["latents"]
    latents[2, 5] = math.nan
    bad = tmp_path / "bad.safetensors"
    save_file({"latents": latents}, bad)
    proc = cli("audioae-decode", str(run), str(bad), "--out", "o", *FAST, cwd=tmp_path)
    one_line_error(proc, str(bad), "1 NaN", "channel 2, frame 5")
    assert not (tmp_path / "o" / "bad.wav").exists()


# --- 11. degenerate files in evaluation means ---------------------------------------------------


@pytest.fixture(scope="module")
def degenerate(tmp_path_factory):
    """good.wav (a tone), one.wav (1 sample), short.wav (1000 samples), silent.wav (0.5 s of
    zeros), all 16 kHz stereo."""
    d = tmp_path_factory.mktemp("degenerate")
    tone(d / "good.wav", 16000, 2, 0.5)
    sf.write(str(d / "one.wav"), np.full((1, 2), 0.3, np.float32), 16000)
    sf.write(str(d / "short.wav"), 0.3 * np.ones((1000, 2), np.float32), 16000)
    sf.write(str(d / "silent.wav"), np.zeros((8000, 2), np.float32), 16000)
    return d


def test_eval_skips_and_lists_files_too_short_or_silent(run, degenerate, tmp_path):
    args = (str(run), str(degenerate), "--out", "e", "--no-visqol", "--conditions", "", *FAST)
    proc = cli("audioae-eval", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "e" / "results.json").read_text())
    assert [f["file"] for f in report["files"]] == ["good.wav"]
    assert [(s["file"], s["kind"]) for s in report["skipped"]] == [
        ("one.wav", "short"),
        ("short.wav", "short"),
        ("silent.wav", "silent"),
    ]
    # the means are the good file's alone (before: +110 dB and -160 dB averaged in)
    assert report["means"]["overall"]["files"] == 1
    good = report["files"][0]["model"]["si_sdr"]
    assert report["means"]["overall"]["model"]["si_sdr"] == pytest.approx(good)
    assert -60 < good < 60
    assert "not in the means: 2 too short for the metrics, 1 silent reference" in proc.stdout
    for name in ("one.wav", "short.wav", "silent.wav"):
        assert f"  {name}: " in proc.stdout  # listed under "skipped:"
    skipped = [w for w in warnings_of(proc) if w.endswith("; skipped")]
    assert len(skipped) == 3 and "1 sample(s) at 16000 Hz" in skipped[0]


def test_eval_refuses_a_zero_cutoff_condition(run, wav, tmp_path):
    proc = cli("audioae-eval", str(run), str(wav), "--conditions", "identity,lowpass0k",
               "--no-visqol", *FAST, cwd=tmp_path)  # fmt: skip
    one_line_error(proc, "lowpass0k", "lowpassNk")
    assert proc.stdout == ""


# --- 13. latents sidecars ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoded(run, wav, tmp_path_factory):
    """audioae-encode's a.safetensors and a.json of the 0.5 s file (8000 samples, 1000 frames)."""
    lat = tmp_path_factory.mktemp("encoded")
    proc = cli("audioae-encode", str(run), str(wav), "--out", str(lat), *FAST, cwd=lat)
    assert proc.returncode == 0, proc.stderr
    return lat


@pytest.mark.parametrize(
    "length, shown",
    [(0, "0"), (-5, "-5"), (8001 * 8, "64008"), ("8000", '"8000"'), ([8000], "[8000]"),
     (8000.5, "8000.5"), (True, "true"), (None, "broken")],
)  # fmt: skip
def test_a_bad_length_in_the_sidecar_is_one_error(run, encoded, tmp_path, length, shown):
    lat = tmp_path / "lat"
    shutil.copytree(encoded, lat)
    meta = json.loads((lat / "a.json").read_text())
    if shown == "broken":
        (lat / "a.json").write_text(json.dumps(meta)[:-10])
        needles = (str(lat / "a.json"), "not valid JSON")
    else:
        meta["length"] = length
        (lat / "a.json").write_text(json.dumps(meta))
        needles = (str(lat / "a.json"), f'"length" is {shown}', "from 1 to 8000")
    proc = cli("audioae-decode", str(run), str(lat / "a.safetensors"), "--out", "o", *FAST,
               cwd=tmp_path)  # fmt: skip
    one_line_error(proc, *needles)
    assert not (tmp_path / "o" / "a.wav").exists()


def test_the_sidecar_length_trims_the_decoded_audio(run, encoded, tmp_path):
    lat = tmp_path / "lat"
    shutil.copytree(encoded, lat)
    meta = json.loads((lat / "a.json").read_text())
    assert (meta["length"], meta["frames"]) == (8000, 1000)
    meta["length"] = 7995
    (lat / "a.json").write_text(json.dumps(meta))
    proc = cli("audioae-decode", str(run), str(lat / "a.safetensors"), "--out", "o", *FAST,
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sf.info(str(tmp_path / "o" / "a.wav")).frames == 7995


def test_decoding_with_a_model_of_another_ratio_is_refused(encoded, tmp_path):
    model = smoke_model("encoder.strides=[2,2]", fold=False)
    assert (model.downsampling_ratio, model.latent_dim) == (4, 8)
    cfg = compose_train("experiment=smoke", "encoder.strides=[2,2]")
    other = export_of(model.state_dict(), cfg, tmp_path / "ratio4")
    proc = cli("audioae-decode", str(other), str(encoded / "a.safetensors"), "--out", "o", *FAST,
               cwd=tmp_path)  # fmt: skip
    one_line_error(proc, str(encoded / "a.safetensors"), "downsampling ratio 8", "is 4")
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_a_forced_re_encode_removes_the_codes_it_wrote_before(run, wav, tmp_path):
    rvq = smoke_model("bottleneck=rvq", fold=False)
    cfg = compose_train("experiment=smoke", "bottleneck=rvq")
    discrete = export_of(rvq.state_dict(), cfg, tmp_path / "rvq")
    npy = ("--format", "npy")
    out = tmp_path / "lat"
    assert cli("audioae-encode", str(discrete), str(wav), "--out", str(out), *npy, *FAST,
               cwd=tmp_path).returncode == 0  # fmt: skip
    assert (out / "a.codes.npy").is_file()
    proc = cli("audioae-encode", str(run), str(wav), "--out", str(out), *npy, *FAST, "--force",
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a.npy"]
    proc = cli("audioae-decode", str(discrete), str(out / "a.npy"), "--out", "o", "--from-codes",
               *FAST, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2, proc.stderr  # after a warning: encoded by another model
    assert (
        proc.stderr.splitlines()[-1]
        == f"audioae-decode: {out / 'a.npy'}: holds no codes (--from-codes)"
    )


def test_a_stale_codes_file_beside_continuous_latents_is_ignored_with_a_warning(run, wav, tmp_path):
    out = tmp_path / "lat"
    assert cli("audioae-encode", str(run), str(wav), "--out", str(out), "--format", "npy",
               *FAST, cwd=tmp_path).returncode == 0  # fmt: skip
    np.save(out / "a.codes.npy", np.zeros((8, 1000), np.int64))  # as an older audioae left it
    proc = cli("audioae-decode", str(run), str(out / "a.npy"), "--out", "o", *FAST, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (warning,) = warnings_of(proc)
    assert f"{out / 'a.codes.npy'}: ignored" in warning and "continuous" in warning


def test_latent_stats_of_another_channel_count_are_refused_by_export(run, tmp_path):
    stats = {"channels": 3, "frames": 10, "items": 1, "mean": [0.0] * 3, "std": [1.0] * 3,
             "global_mean": 0.0, "global_std": 1.0, "scale": 1.0}  # fmt: skip
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    proc = cli("audioae-export", str(run), "--out", "e", "--latent-stats", "stats.json",
               cwd=tmp_path)  # fmt: skip
    one_line_error(proc, "stats.json", "3 latent channel(s)", "have 8")
    assert not (tmp_path / "e").exists()


# --- 14. clipping -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loud_model(tmp_path_factory):
    """A random smoke model whose last decoder layer is 100 times louder."""
    model = smoke_model(fold=False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["decoder.layers.4.weight_g"] *= 100
    return export_of(state, compose_train("experiment=smoke"), tmp_path_factory.mktemp("loud"))


def test_an_integer_format_warns_how_much_it_clips(loud_model, wav, tmp_path):
    proc = cli("audioae-reconstruct", str(loud_model), str(wav), "--out", "f", *FAST,
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0 and warnings_of(proc) == [], proc.stderr
    full, _ = sf.read(str(tmp_path / "f" / "a.wav"))
    over = float((np.abs(full) > 1).mean())
    assert over > 0.01  # the float file keeps what lies beyond full scale
    proc = cli("audioae-reconstruct", str(loud_model), str(wav), "--out", "i", "--subtype",
               "PCM_16", *FAST, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (warning,) = warnings_of(proc)
    assert warning.startswith(f"audioae-reconstruct: warning: {Path('i') / 'a.wav'}: ")
    assert f"{over:.2%} of the samples beyond full scale" in warning
    assert "PCM_16" in warning and "--subtype FLOAT" in warning
    clipped, _ = sf.read(str(tmp_path / "i" / "a.wav"))
    assert np.abs(clipped).max() <= 1.0 and np.abs(clipped).max() > 0.99


# --- 15. a report with a short clip, and a failed report ----------------------------------------


def test_eval_report_with_a_clip_under_the_stft_window(run, wav, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(wav, data / "a.wav")
    sf.write(str(data / "tiny.wav"), 0.3 * np.ones((500, 2), np.float32), 16000)
    proc = cli("audioae-eval", str(run), str(data), "--out", "e", "--report", "rep",
               "--no-visqol", "--conditions", "", *FAST, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "rep" / "index.html").read_text()
    assert 'data-file="a.wav"' in page and 'data-file="tiny.wav"' not in page
    assert "1 too short for the metrics" in page
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == [
        "audio", "img", "index.html", "report.css", "report.js",
    ]  # fmt: skip


def test_a_failed_report_leaves_no_half_written_one(run, nan_model, wav, tmp_path):
    model, _ = nan_model  # the second model fails after the first wrote its audio
    proc = cli("audioae-eval", str(run), str(model), str(wav), "--out", "e", "--report", "rep",
               "--no-visqol", "--conditions", "", *FAST, cwd=tmp_path)  # fmt: skip
    one_line_error(proc, "NaN")
    assert not (tmp_path / "rep").exists()

    # over an existing report (--force), a failure keeps it as it was
    good = cli("audioae-eval", str(run), str(wav), "--out", "e1", "--report", "rep",
               "--no-visqol", "--conditions", "", *FAST, cwd=tmp_path)  # fmt: skip
    assert good.returncode == 0, good.stderr
    before = {p: p.read_bytes() for p in (tmp_path / "rep").rglob("*") if p.is_file()}
    proc = cli("audioae-eval", str(run), str(model), str(wav), "--out", "e2", "--report", "rep",
               "--no-visqol", "--conditions", "", "--force", *FAST, cwd=tmp_path)  # fmt: skip
    one_line_error(proc, "NaN")
    after = {p: p.read_bytes() for p in (tmp_path / "rep").rglob("*") if p.is_file()}
    assert after == before


# --- 16. errors that did not name the bad input -------------------------------------------------


def test_convert_refuses_a_nan_naming_the_key(tmp_path):
    config = json.loads((CONFIGS / "small_wavelet.json").read_text())
    assert "optimizer_configs" not in config["training"]
    config["training"]["learning_rate"] = math.nan
    (tmp_path / "nan.json").write_text(json.dumps(config))  # Python writes NaN, unquoted
    proc = cli("audioae-convert", "nan.json", cwd=tmp_path)
    one_line_error(proc, "nan.json: training.learning_rate: NaN", "finite number")


@pytest.mark.parametrize("command, value", [("audioae-pre-encode", "nan"), ("audioae-eval", "inf")])
def test_seconds_must_be_a_finite_number(run, wav, tmp_path, command, value):
    proc = cli(command, str(run), str(wav.parent), "--out", "o", "--seconds", value,
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    expected = f"argument --seconds: {value}: must be more than 0 (a finite number)"
    assert last == f"{command}: error: {expected}"
    assert not (tmp_path / "o").exists()


def test_a_device_that_holds_no_data_is_refused(run, wav, tmp_path):
    proc = cli("audioae-encode", str(run), str(wav), "--out", "o", "--device", "meta",
               cwd=tmp_path)  # fmt: skip
    one_line_error(proc, "--device meta", "cpu, cuda")
    assert not (tmp_path / "o").exists()


# --- 17. formats, a missing inner model, a folder as --out --------------------------------------


@pytest.mark.parametrize("fmt, subtype", [("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")])
def test_lossy_formats_without_a_subtype(run, wav, tmp_path, fmt, subtype):
    proc = cli("audioae-reconstruct", str(run), str(wav), "--out", "o", "--format", fmt, *FAST,
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sf.info(str(tmp_path / "o" / f"a.{fmt}")).subtype == subtype


def test_an_unwritable_subtype_fails_before_the_model_is_loaded(wav, tmp_path):
    proc = cli("audioae-reconstruct", str(tmp_path / "no-model"), str(wav), "--out", "o",
               "--format", "mp3", "--subtype", "PCM_16", cwd=tmp_path)  # fmt: skip
    one_line_error(proc, "--subtype PCM_16", "mp3", "MPEG_LAYER_III")


def test_a_missing_inner_model_is_named_not_audioae_export(tmp_path):
    inner = tmp_path / "gone" / "inner"
    cfg = compose_train(
        "experiment=smoke", "pretransform=autoencoder", f"pretransform.path={inner}"
    )
    outer = tmp_path / "outer"
    outer.mkdir()
    OmegaConf.save(cfg, outer / "config.yaml", resolve=True)
    save_file({"x": torch.zeros(1)}, outer / "model.safetensors")
    proc = cli("audioae-export", str(outer), "--out", "e", cwd=tmp_path)
    err = one_line_error(proc, f"pretransform.path {inner}", "put that model back")
    assert "run audioae-export" not in err and "(audioae-export)" not in err


def test_a_folder_as_the_output_file_is_named(run, tmp_path):
    (tmp_path / "D").mkdir()
    for command, args in (
        ("audioae-convert", ("--to-json", str(run), "--out", "D", "--force")),
        ("audioae-manifest", (str(tmp_path), "--out", "D", "--force")),
    ):
        proc = cli(command, *args, cwd=tmp_path)
        err = one_line_error(proc, "D: a folder")
        assert ".tmp-" not in err
    assert list((tmp_path / "D").iterdir()) == []


# --- 18. named pipes in data folders ------------------------------------------------------------


@pytest.fixture(scope="module")
def piped(tmp_path_factory):
    """data/: two WAVs (the second twice above full scale) and a named pipe pipe.wav."""
    d = tmp_path_factory.mktemp("piped")
    data = d / "data"
    data.mkdir()
    tone(data / "a.wav", 16000, 2, 1.0)
    loud = 2.0 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)[:, None].repeat(2, 1)
    sf.write(str(data / "loud.wav"), loud.astype(np.float32), 16000, subtype="FLOAT")
    os.mkfifo(data / "pipe.wav")
    return d


@pytest.fixture(scope="module")
def piped_training(piped):
    args = ("data=audio_dir", "data.path=data", "data.holdout=0", "hydra.run.dir=run")
    return bounded("audioae-train", "experiment=smoke", "trainer.max_steps=2", *args, cwd=piped)


def test_training_skips_a_named_pipe_with_a_warning(piped, piped_training):
    proc = piped_training
    assert proc.returncode == 0, proc.stderr
    pipe = [w for w in warnings_of(proc) if "pipe.wav" in w]
    assert pipe == [
        "audioae-train: warning: data/pipe.wav: a named pipe, not a regular file; skipped"
    ]


def test_training_warns_of_audio_above_full_scale(piped, piped_training):
    clipped = [w for w in warnings_of(piped_training) if "beyond full scale" in w]
    assert clipped and all("loud.wav" in w for w in clipped)
    fraction = float(clipped[0].split("): ")[1].split("%")[0]) / 100
    assert 0.4 < fraction < 0.75  # of a 2.0-peak sine, |x| > 1 for two thirds of the time
    assert "peak 2" in clipped[0]


@pytest.mark.parametrize("command", ["audioae-manifest", "audioae-eval", "audioae-pre-encode"])
def test_folder_scanners_skip_a_named_pipe(run, piped, tmp_path, command):
    args = {
        "audioae-manifest": (str(piped / "data"), "--out", str(tmp_path / "m.jsonl")),
        "audioae-eval": (str(run), str(piped / "data"), "--out", str(tmp_path / "e"),
                         "--no-visqol", "--conditions", "", *FAST),
        "audioae-pre-encode": (str(run), str(piped / "data"), "--out", str(tmp_path / "p"),
                               "--chunk-size", "0", "--device", "cpu"),
    }[command]  # fmt: skip
    proc = bounded(command, *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    pipe = piped / "data" / "pipe.wav"
    assert f"{command}: warning: {pipe}: a named pipe, not a regular file; skipped" in proc.stderr
    if command == "audioae-manifest":
        lines = (tmp_path / "m.jsonl").read_text().splitlines()
        assert [json.loads(line)["path"] for line in lines] == ["a.wav", "loud.wav"]


def test_a_named_pipe_given_as_an_input_is_one_error(run, piped, tmp_path):
    pipe = piped / "data" / "pipe.wav"
    proc = bounded("audioae-encode", str(run), str(pipe), "--out", "o", *FAST, cwd=tmp_path)
    one_line_error(proc, f"{pipe}: a named pipe")


# --- 19. a path too long ------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["run", "sub"])
def test_a_run_folder_name_too_long_is_one_line(tmp_path, where):
    run_dir = LONG if where == "run" else f"sub/{LONG}"
    proc = cli("audioae-train", "experiment=smoke", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    one_line_error(proc, LONG, "too long")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("under", ["", "sub/"])
@pytest.mark.parametrize("command", ["audioae-encode", "audioae-eval", "audioae-manifest"])
def test_an_out_name_too_long_is_one_line(run, wav, tmp_path, command, under):
    args = (str(wav.parent),) if command == "audioae-manifest" else (str(run), str(wav), *FAST)
    out = under + (f"{LONG}/x.jsonl" if command == "audioae-manifest" else LONG)
    proc = cli(command, *args, "--out", out, cwd=tmp_path)
    one_line_error(proc, LONG, "too long")
    assert list(tmp_path.iterdir()) == []


def test_a_run_folder_reads_as_its_newest_checkpoint_even_beside_an_export(run, tmp_path):
    """An export left in a run folder (by versions that allowed it) never shadows the run."""
    import shutil

    from audioae import runs
    from audioae.inference.loading import locate

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    newest = runs.find_checkpoint(copy)
    shutil.copy(newest / "config.yaml", copy / "config.yaml")
    shutil.copy(newest / "model.safetensors", copy / "model.safetensors")
    assert locate(copy).weights.parent == newest
