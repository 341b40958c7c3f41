"""Issue 16, the commands other than training: what they write and what they refuse, through
the real console scripts. Every refusal is one line on stderr, status 2, before any computing,
with the files already there byte-identical."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from audioae.files import atomic_write
from conftest import compose_train, run_cli
from inference.inference_helpers import (
    single_threaded_subprocesses,
    smoke_model,
    tone,
    trained_run,
)

pytestmark = pytest.mark.slow  # real commands, a second each at least
FAST = ("--chunk-size", "0", "--device", "cpu")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    return tone(tmp_path_factory.mktemp("audio") / "a.wav", 16000, 2, 0.5)


def cli(command: str, *args: str, cwd: Path):
    with single_threaded_subprocesses():
        return run_cli(command, *args, cwd=cwd, check=False)


def one_line_error(proc, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    return proc.stderr


# --- 1. one overwrite rule, atomic writes -------------------------------------------------------


@pytest.mark.parametrize("command", ["audioae-encode", "audioae-reconstruct", "audioae-decode"])
def test_inference_commands_refuse_to_overwrite_without_force(run, wav, tmp_path, command):
    inputs = [str(wav)]
    suffix = ".safetensors" if command == "audioae-encode" else ".wav"
    if command == "audioae-decode":
        lat = tmp_path / "lat"
        assert cli("audioae-encode", str(run), str(wav), "--out", str(lat), *FAST, cwd=tmp_path)
        inputs = [str(lat / "a.safetensors")]
    out = tmp_path / "out"
    out.mkdir()
    target = out / f"a{suffix}"
    target.write_bytes(b"precious")
    proc = cli(command, str(run), *inputs, "--out", str(out), *FAST, cwd=tmp_path)
    one_line_error(proc, str(target), "--force")
    assert target.read_bytes() == b"precious" and sorted(out.iterdir()) == [target]

    proc = cli(command, str(run), *inputs, "--out", str(out), *FAST, "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert target.read_bytes() != b"precious" and not list(out.glob(".tmp-*"))


def test_encode_counts_the_metadata_file_as_an_output(run, wav, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.json").write_text("{}")
    proc = cli("audioae-encode", str(run), str(wav), "--out", str(out), *FAST, cwd=tmp_path)
    one_line_error(proc, str(out / "a.json"))
    assert (out / "a.json").read_text() == "{}" and not (out / "a.safetensors").exists()


def test_eval_refuses_to_overwrite_results_before_computing(run, wav, tmp_path):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "results.csv").write_text("old\n")
    args = (str(run), str(wav), "--out", str(out), "--no-visqol", "--conditions", "", *FAST)
    proc = cli("audioae-eval", *args, cwd=tmp_path)
    one_line_error(proc, str(out / "results.csv"), "--force")
    assert proc.stdout == ""  # nothing computed: the model is not even loaded
    assert (out / "results.csv").read_text() == "old\n" and not (out / "results.json").exists()
    proc = cli("audioae-eval", *args, "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out / "results.csv").read_text().startswith("scope,name,condition")
    assert (out / "results.json").is_file()


def test_convert_to_json_refuses_to_overwrite(run, tmp_path):
    target = tmp_path / "model_config.json"
    target.write_text("mine\n")
    proc = cli("audioae-convert", "--to-json", str(run), "--out", str(target), cwd=tmp_path)
    one_line_error(proc, str(target), "--force")
    assert target.read_text() == "mine\n"
    args = ("--to-json", str(run), "--out", str(target), "--force")
    assert cli("audioae-convert", *args, cwd=tmp_path).returncode == 0
    assert '"model_type": "autoencoder"' in target.read_text()


def test_an_interrupted_write_leaves_the_old_file_and_no_partial_one(tmp_path):
    target = tmp_path / "x.wav"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_write(target) as tmp:
        sf.write(str(tmp), np.zeros((100, 2), np.float32), 16000)
        assert tmp.parent == tmp_path and tmp.name.endswith(".wav")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]
    with atomic_write(target) as tmp:
        sf.write(str(tmp), np.zeros((100, 2), np.float32), 16000)
    assert sf.info(str(target)).frames == 100 and list(tmp_path.iterdir()) == [target]


# --- 2. an unwritable --out fails first ---------------------------------------------------------


def unwritable(tmp_path: Path) -> list[Path]:
    """Output folders no one can write in: under a file, and (not as root, whom permissions do
    not stop) in a read-only folder; /sys, read-only, where it is."""
    (tmp_path / "file").write_text("")
    outs = [tmp_path / "file" / "out"]
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    try:
        (ro / "probe").touch()
        (ro / "probe").unlink()
    except OSError:
        outs.append(ro / "out")
    if Path("/sys").is_dir() and not (Path("/sys") / "audioae-out").exists():
        outs.append(Path("/sys/audioae-out"))
    return outs


@pytest.mark.parametrize("command", ["audioae-encode", "audioae-reconstruct", "audioae-eval"])
def test_an_unwritable_out_is_one_line_before_any_computing(run, wav, tmp_path, command):
    extra = ("--no-visqol",) if command == "audioae-eval" else ()
    for out in unwritable(tmp_path):
        proc = cli(command, str(run), str(wav), "--out", str(out), *FAST, *extra, cwd=tmp_path)
        one_line_error(proc, str(out))
        assert proc.stdout == ""


@pytest.mark.parametrize("command", ["audioae-encode", "audioae-reconstruct"])
def test_a_folder_as_an_input_file_is_one_line_saying_so(run, tmp_path, command):
    (tmp_path / "songs").mkdir()
    proc = cli(command, str(run), str(tmp_path / "songs"), "--out", "o", cwd=tmp_path)
    one_line_error(proc, f"{tmp_path / 'songs'}: a folder; give its files")
    assert not (tmp_path / "o").exists()


def test_convert_to_json_into_an_unwritable_folder(run, tmp_path):
    out = unwritable(tmp_path)[0] / "model_config.json"
    proc = cli("audioae-convert", "--to-json", str(run), "--out", str(out), cwd=tmp_path)
    one_line_error(proc, str(out.parent))


# --- 3. input files: NaN, truncated, too many channels, unreadable in a folder ------------------


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """good.wav, nan.wav (one NaN sample), cut.wav (half of its data chunk missing), six.wav
    (6 channels), junk.wav (not audio), all 16 kHz, 0.5 s."""
    d = tmp_path_factory.mktemp("bad")
    tone(d / "good.wav", 16000, 2, 0.5)
    data = np.full((8000, 2), 0.1, np.float32)
    data[1234, 1] = np.nan
    sf.write(str(d / "nan.wav"), data, 16000, subtype="FLOAT")
    tone(d / "cut.wav", 16000, 2, 0.5)  # 8000 frames of 16-bit stereo after a 44-byte header
    raw = (d / "cut.wav").read_bytes()
    assert len(raw) == 44 + 8000 * 4
    (d / "cut.wav").write_bytes(raw[: 44 + 4000 * 4])
    tone(d / "six.wav", 16000, 6, 0.5)
    (d / "junk.wav").write_bytes(b"RIFF" + bytes(range(200)))
    return d


def test_nan_samples_are_refused_naming_the_file(run, bad, tmp_path):
    for command in ("audioae-encode", "audioae-reconstruct"):
        out = tmp_path / command
        proc = cli(command, str(run), str(bad / "nan.wav"), "--out", str(out), *FAST, cwd=tmp_path)
        one_line_error(proc, str(bad / "nan.wav"), "NaN")
        assert not out.exists() or not list(out.iterdir())


def test_a_truncated_wav_warns_naming_the_file_and_what_was_read(run, bad, tmp_path):
    cut = bad / "cut.wav"
    proc = cli(
        "audioae-reconstruct", str(run), str(cut), "--out", str(tmp_path), *FAST, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    (warning,) = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert warning.startswith(f"audioae-reconstruct: warning: {cut}: truncated")
    assert "declares 8000 frames, read 4000" in warning
    assert sf.info(str(tmp_path / "cut.wav")).frames == 4000


def test_more_channels_than_the_model_takes_warns_what_was_done(run, bad, tmp_path):
    six = bad / "six.wav"
    proc = cli(
        "audioae-reconstruct", str(run), str(six), "--out", str(tmp_path), *FAST, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    (warning,) = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert warning == (
        f"audioae-reconstruct: warning: {six}: 6 channels, the model takes 2: kept the first 2"
    )
    assert sf.info(str(tmp_path / "six.wav")).channels == 2


def test_eval_skips_unreadable_files_in_a_folder_and_counts_them(run, bad, tmp_path):
    out = tmp_path / "eval"
    args = (str(run), str(bad), "--out", str(out), "--no-visqol", "--conditions", "", *FAST)
    proc = cli("audioae-eval", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert "Traceback" not in proc.stderr
    skipped = sorted(line for line in warnings if line.endswith("; skipped"))
    assert [line.split(": ")[2] for line in skipped] == [
        str(bad / "junk.wav"),
        str(bad / "nan.wav"),
    ]
    report = json.loads((out / "results.json").read_text())
    assert sorted(r["file"] for r in report["files"]) == ["cut.wav", "good.wav", "six.wav"]
    assert [s["file"] for s in report["skipped"]] == ["junk.wav", "nan.wav"]
    assert report["means"]["overall"]["files"] == 3
    assert "skipped 2 file(s) of 5, not in the means: 2 unreadable" in proc.stdout

    # a file named on the command line is not skipped: it is the error
    named = cli("audioae-eval", str(run), str(bad / "junk.wav"), "--out", str(tmp_path / "e2"),
                "--no-visqol", *FAST, cwd=tmp_path)  # fmt: skip
    one_line_error(named, str(bad / "junk.wav"))


# --- 4. audioae-decode: codes and latents it cannot decode --------------------------------------


@pytest.fixture(scope="module")
def rvq(tmp_path_factory):
    """An export of a random smoke model with an 8 x 1024 RVQ bottleneck."""
    model = smoke_model("bottleneck=rvq", fold=False)
    export = tmp_path_factory.mktemp("rvq")
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, export / "model.safetensors"
    )
    cfg = compose_train("experiment=smoke", "bottleneck=rvq")
    OmegaConf.save(cfg, export / "config.yaml", resolve=True)
    assert model.bottleneck.num_quantizers == 8 and model.bottleneck.codebook_size == 1024
    return export


def test_from_codes_on_a_continuous_model_is_one_error(run, tmp_path):
    save_file({"codes": torch.zeros(8, 10, dtype=torch.int64)}, tmp_path / "c.safetensors")
    args = (str(run), str(tmp_path / "c.safetensors"), "--out", str(tmp_path / "o"), *FAST)
    proc = cli("audioae-decode", *args, "--from-codes", cwd=tmp_path)
    one_line_error(proc, "--from-codes", "continuous")


@pytest.mark.parametrize(
    "case, codes, needles",
    [
        ("range", torch.full((8, 10), 1024), ("code 1024", "0..1023")),
        ("negative", torch.full((8, 10), -1), ("code -1", "0..1023")),
        ("float", torch.zeros(8, 10), ("torch.float32", "integers")),
        ("count", torch.zeros(3, 10, dtype=torch.int64), ("3 codebook(s)", "has 8")),
    ],
)
def test_codes_a_model_cannot_decode_are_one_error_naming_the_file(
    rvq, tmp_path, case, codes, needles
):
    export = rvq
    path = tmp_path / f"{case}.safetensors"
    save_file({"codes": codes}, path)
    out = tmp_path / "o"
    proc = cli("audioae-decode", str(export), str(path), "--out", str(out), "--from-codes", *FAST,
               cwd=tmp_path)  # fmt: skip
    one_line_error(proc, str(path), *needles)
    assert not (out / f"{case}.wav").exists()


def test_latents_with_zero_frames_are_one_error(run, tmp_path):
    path = tmp_path / "empty.safetensors"
    save_file({"latents": torch.zeros(8, 0)}, path)
    proc = cli(
        "audioae-decode", str(run), str(path), "--out", str(tmp_path / "o"), *FAST, cwd=tmp_path
    )
    one_line_error(proc, str(path), "0 frames")
