"""audioae-encode / -decode / -reconstruct on generated files: two formats, two sample rates,
the real console scripts; errors are one line with exit status 2."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from audioae.cli.infer import decode_main, encode_main, reconstruct_main
from audioae.inference import decode_long, load_model, optimize_for_inference, state_hash
from conftest import compose_train, run_cli
from inference.inference_helpers import (  # noqa: F401
    one_thread,
    single_threaded_subprocesses,
    smoke_model,
    tone,
    trained_run,
)

pytestmark = pytest.mark.usefixtures("one_thread")
# on the CPU also on a GPU machine: the comparisons below are with the library on the CPU, and
# CUDA's TF32 convolutions differ from it by about 1e-4 (tests/test_gpu.py checks CUDA)
CHUNKING = ("--chunk-size", "64", "--overlap", "16", "--device", "cpu")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    return [
        tone(d / "a.wav", 16000, 2, 1.3),  # the model's rate and channels
        tone(d / "b.flac", 22050, 1, 0.7, 330.0),  # resampled, mono copied to stereo
        tone(d / "c.flac", 16000, 2, 0.01, 880.0),  # 160 samples: shorter than one chunk
    ]


def invoke(main, *args: str):
    """Run a command in-process; returns its exit status."""
    with pytest.raises(SystemExit) as code:
        main([*args])
        raise SystemExit(0)
    return code.value.code


def test_encode_decode_reconstruct_commands(run, files, tmp_path):
    lat, dec, rec = tmp_path / "lat", tmp_path / "dec", tmp_path / "rec"
    names = [str(f) for f in files]
    with single_threaded_subprocesses():
        run_cli("audioae-encode", str(run), *names, "--out", str(lat), *CHUNKING, cwd=tmp_path)
        run_cli("audioae-reconstruct", str(run), *names, "--out", str(rec), *CHUNKING, cwd=tmp_path)
    encoded = [str(lat / f"{f.stem}.safetensors") for f in files]
    flac = ("--format", "flac")
    assert invoke(decode_main, str(run), *encoded, "--out", str(dec), *flac, *CHUNKING) == 0

    model, _ = load_model(run)
    digest = state_hash(model.state_dict())
    optimize_for_inference(model)
    lengths = {"a": 20800, "b": 11200, "c": 160}  # at 16 kHz
    for f in files:
        meta = json.loads((lat / f"{f.stem}.json").read_text())
        assert meta["sample_rate"] == 16000 and meta["downsampling_ratio"] == 8
        assert meta["length"] == lengths[f.stem] and meta["model_hash"] == digest
        assert meta["latents"] == "mean" and meta["source"]["sample_rate"] == sf.info(f).samplerate
        with safe_open(str(lat / f"{f.stem}.safetensors"), framework="pt") as st:
            assert json.loads(st.metadata()["audioae"]) == meta
            latents = st.get_tensor("latents")
        assert latents.shape == (8, -(-lengths[f.stem] // 8))

        audio, rate = sf.read(dec / f"{f.stem}.flac", dtype="float32", always_2d=True)
        assert rate == 16000 and audio.shape == (lengths[f.stem], 2)
        recon, rate = sf.read(rec / f"{f.stem}.wav", dtype="float32", always_2d=True)
        assert rate == 16000 and recon.shape == (lengths[f.stem], 2)
        assert sf.info(rec / f"{f.stem}.wav").subtype == "FLOAT"
        # reconstruct = decode(encode(...)): the same numbers as the library calls
        ref = decode_long(model, latents[None], lengths[f.stem], 64, 16)[0].T.numpy()
        np.testing.assert_allclose(recon, ref, atol=1e-5)
        np.testing.assert_allclose(audio, ref.clip(-1, 1), atol=2e-5)  # 24-bit FLAC


def test_npy_format_and_sampling(run, files, tmp_path):
    wav, seeded = str(files[0]), ("--sample", "--seed", "3")
    assert invoke(encode_main, str(run), wav, "--out", str(tmp_path / "m"), "--format", "npy") == 0
    assert invoke(encode_main, str(run), wav, "--out", str(tmp_path / "s"), *seeded) == 0
    assert invoke(encode_main, str(run), wav, "--out", str(tmp_path / "t"), *seeded) == 0
    mean = np.load(tmp_path / "m/a.npy")
    sampled = load_file(tmp_path / "s/a.safetensors")["latents"].numpy()
    assert mean.shape == sampled.shape == (8, 2600)
    assert not np.allclose(mean, sampled)
    again = load_file(tmp_path / "t/a.safetensors")["latents"].numpy()
    np.testing.assert_array_equal(sampled, again)
    assert json.loads((tmp_path / "s/a.json").read_text())["latents"] == "sample"
    npy = str(tmp_path / "m/a.npy")
    assert invoke(decode_main, str(run), npy, "--out", str(tmp_path / "d")) == 0
    assert sf.info(tmp_path / "d/a.wav").frames == 20800


def test_discrete_models_store_and_decode_codes(tmp_path, files):
    model = smoke_model("bottleneck=rvq", fold=False)
    export = tmp_path / "rvq"
    export.mkdir()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, export / "model.safetensors")
    cfg = compose_train("experiment=smoke", "bottleneck=rvq")
    OmegaConf.save(cfg, export / "config.yaml", resolve=True)
    wav, whole = str(files[0]), ("--chunk-size", "0")
    for fmt in ("safetensors", "npy"):
        out = str(tmp_path / fmt)
        assert invoke(encode_main, str(export), wav, "--out", out, "--format", fmt, *whole) == 0
    codes = load_file(tmp_path / "safetensors/a.safetensors")["codes"]
    assert codes.dtype == torch.int64 and codes.shape[-1] == 2600
    np.testing.assert_array_equal(np.load(tmp_path / "npy/a.codes.npy"), codes.numpy())
    for source in ("safetensors/a.safetensors", "npy/a.codes.npy"):
        out = tmp_path / ("from_" + source.split("/")[0])
        args = (str(tmp_path / source), "--out", str(out), "--from-codes", *whole)
        assert invoke(decode_main, str(export), *args) == 0
    a, _ = sf.read(tmp_path / "from_safetensors/a.wav")
    b, _ = sf.read(tmp_path / "from_npy/a.wav")
    np.testing.assert_array_equal(a, b)


def test_errors_are_one_line_with_status_2(run, files, tmp_path, capsys):
    (tmp_path / "bad.wav").write_bytes(b"RIFF....garbage")
    (tmp_path / "empty").mkdir()
    broken = tmp_path / "broken"
    shutil.copytree(sorted((run / "checkpoints").iterdir())[-1], broken)
    (broken / "model.safetensors").write_bytes((broken / "model.safetensors").read_bytes()[:100])
    (broken / "ema.safetensors").unlink()
    save_file({"latents": torch.zeros(5, 10)}, tmp_path / "wrong.safetensors")
    wav, out = str(files[0]), str(tmp_path / "out")
    cases = [
        (encode_main, (str(run), str(tmp_path / "missing.wav")), "missing.wav: no such file"),
        (encode_main, (str(run), str(tmp_path / "bad.wav")), "bad.wav: cannot read audio"),
        (encode_main, (str(tmp_path / "empty"), wav), "not a model"),
        (encode_main, (str(tmp_path / "nowhere"), wav), "no such file or directory"),
        (encode_main, (str(broken), wav), "not a readable safetensors file"),
        (encode_main, (str(run), wav, "--chunk-size", "10", "--overlap", "8"), "overlap"),
        (reconstruct_main, (str(run), wav, "--device", "cuda:7"), "--device cuda:7"),
        (decode_main, (str(run), str(tmp_path / "wrong.safetensors")), "latent_dim is 8"),
        (reconstruct_main, (str(run), wav, "--out", str(files[0].parent)), "overwrite an input"),
        (reconstruct_main, (str(run), wav, "--format", "xyz"), "--format xyz"),
    ]
    if torch.cuda.is_available():
        cases.pop(6)
    for main, args, expected in cases:
        extra = () if "--out" in args else ("--out", out)
        assert invoke(main, *args, *extra) == 2, expected
        err = capsys.readouterr().err.strip()
        assert expected in err and "Traceback" not in err, err
        assert len(err.splitlines()) == 1, err


def test_small_chunks_lower_the_default_overlap_as_eval_does(run, files, tmp_path):
    """--chunk-size 40 without --overlap: the default 32 is lowered to 20, half the chunk
    (inference.chunked.chunking, shared with audioae-eval); an explicit one is checked."""
    out = tmp_path / "lat"
    args = (str(run), str(files[0]), "--out", str(out), "--device", "cpu", "--chunk-size", "40")
    assert invoke(encode_main, *args) == 0
    meta = json.loads((out / f"{files[0].stem}.json").read_text())
    assert (meta["chunk_size"], meta["overlap"]) == (40, 20)
    assert invoke(encode_main, *args, "--overlap", "21") == 2


@pytest.mark.slow
def test_reconstruct_a_stereo_file_through_a_mono_in_model(tmp_path_factory, tmp_path):
    """The encoder gets the file's channel mean, by the rule training uses; a
    stable-audio-tools folder stating audio_channels 2 beside in_channels 1 imports too."""
    from audioae.convert import config_to_sat

    run = trained_run(tmp_path_factory, "in_channels=1", "out_channels=2")
    model, cfg = load_model(run)
    sat = tmp_path / "sat"
    sat.mkdir()
    config = config_to_sat(cfg)
    assert (config["audio_channels"], config["model"]["in_channels"]) == (2, 1)
    del config["training"]["force_input_mono"]  # only SAT's training reads it, and this one
    (sat / "model_config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, sat / "model.safetensors")

    stereo = tone(tmp_path / "s.wav", 16000, 2, 0.5)  # channel 1 is 0.8 x channel 0
    audio = torch.from_numpy(sf.read(stereo, dtype="float32", always_2d=True)[0].T.copy())
    optimize_for_inference(model)
    with torch.no_grad():
        ref = model.decode(model.encode(audio.mean(0, keepdim=True)[None], sample=False).latents)
    ref = ref[0].T.numpy()
    whole = ("--chunk-size", "0", "--device", "cpu")
    out = ("--out", str(tmp_path / "a"))
    assert invoke(reconstruct_main, str(run), str(stereo), *out, *whole) == 0
    with single_threaded_subprocesses():
        run_cli("audioae-reconstruct", str(sat), str(stereo), "--out", str(tmp_path / "b"),
                *whole, cwd=tmp_path)  # fmt: skip
    for out in ("a", "b"):
        recon, rate = sf.read(tmp_path / out / "s.wav", dtype="float32", always_2d=True)
        assert rate == 16000 and recon.shape == (8000, 2)
        np.testing.assert_allclose(recon, ref, atol=1e-5)
