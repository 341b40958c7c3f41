"""audioae-pre-encode: the same latents as audioae-encode, crops with padding masks, exact
statistics, a restart after a kill, two processes, and audioae-export --latent-stats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from audioae.build import build_autoencoder
from audioae.cli.infer import encode_main
from audioae.errors import AudioAEError
from audioae.inference import pre_encode as pe
from audioae.inference import read_latent_stats
from audioae.inference.export import export
from audioae.inference.latent_stats import Moments
from conftest import compose_train
from inference.inference_helpers import one_thread, tone  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread", "fresh_accelerate")
CHUNKS = {"chunk_size": 64, "overlap": 16, "device": "cpu"}


@pytest.fixture
def fresh_accelerate():
    """pre_encode sets up Accelerate's process state; later tests must not inherit it."""
    yield
    from accelerate.state import AcceleratorState, PartialState

    AcceleratorState._reset_state(True)
    PartialState._reset_state()


def make_export(folder: Path, seed: int = 0, *overrides: str) -> Path:
    """A randomly initialised smoke model as an export folder (config.yaml + model.safetensors)."""
    cfg = compose_train("experiment=smoke", *overrides)
    torch.manual_seed(seed)
    model = build_autoencoder(cfg)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "model.safetensors")
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_export(tmp_path_factory.mktemp("model") / "export")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    (d / "sub").mkdir()
    tone(d / "a.wav", 16000, 2, 1.3)  # 2600 frames of the ratio-8 model: chunked
    tone(d / "sub" / "b.flac", 22050, 1, 0.7, 330.0)  # resampled, mono copied to stereo
    tone(d / "c.wav", 16000, 2, 0.9, 550.0)
    return d


def items(out: Path) -> dict[tuple[str, int], tuple[np.ndarray, dict]]:
    """{(relpath, crop): (array, metadata)} of every item in a pre-encoded folder."""
    found = {}
    for js in sorted(out.glob("*/*.json")):
        meta = json.loads(js.read_text())
        key = (meta["relpath"], meta["crop"])
        assert key not in found, f"{key} written twice"
        found[key] = (np.load(js.with_suffix(".npy")), meta)
    return found


def test_latents_equal_audioae_encode(model_dir, data, tmp_path):
    pe.pre_encode(str(model_dir), data, tmp_path / "pre", pe.Options(**CHUNKS))
    files = sorted(str(p) for p in data.rglob("*.*"))
    chunking = ("--chunk-size", "64", "--overlap", "16", "--device", "cpu", "--format", "npy")
    encode_main([str(model_dir), *files, "--out", str(tmp_path / "enc"), *chunking])
    got = items(tmp_path / "pre")
    assert sorted(rel for rel, _ in got) == ["a.wav", "c.wav", os.path.join("sub", "b.flac")]
    for (rel, crop), (latents, meta) in got.items():
        expected = np.load(tmp_path / "enc" / (Path(rel).stem + ".npy"))
        np.testing.assert_array_equal(latents, expected)  # bitwise
        enc_meta = json.loads((tmp_path / "enc" / (Path(rel).stem + ".json")).read_text())
        assert meta["model_hash"] == enc_meta["model_hash"]
        assert meta["padding_mask"] == [1] * latents.shape[-1]
        assert meta["length"] == enc_meta["length"] and meta["crops"] == 1 and crop == 0


def test_crops_masks_metadata_and_exact_stats(model_dir, data, tmp_path):
    out = tmp_path / "crops"
    pe.pre_encode(str(model_dir), data, out, pe.Options(seconds=0.5, batch_size=1, **CHUNKS))
    got = items(out)
    # a.wav: 20800 samples -> crops of 8000: 8000, 8000, 4800; b: 11200 at 16 kHz -> 2
    assert sorted(got) == [("a.wav", 0), ("a.wav", 1), ("a.wav", 2), ("c.wav", 0),
                           ("c.wav", 1), (os.path.join("sub", "b.flac"), 0),
                           (os.path.join("sub", "b.flac"), 1)]  # fmt: skip
    latents, meta = got[("a.wav", 2)]
    assert latents.shape == (8, 1000) and latents.dtype == np.float32
    assert meta["padding_mask"] == [1] * 600 + [0] * 400
    assert meta["offset"] == 16000 and meta["length"] == 4800 and meta["crops"] == 3
    assert meta["seconds_start"] == 1 and meta["seconds_total"] == 2
    assert meta["sample_rate"] == 16000 and meta["downsampling_ratio"] == 8
    assert meta["path"] == str(data / "a.wav") and meta["latents"] == "mean"
    assert meta["timestamps"] == [16000 / 20800, 24000 / 20800]  # SAT's (offset + n) / total
    # batching equal-length crops gives the same latents (to float rounding)
    batched = tmp_path / "batched"
    pe.pre_encode(str(model_dir), data, batched, pe.Options(seconds=0.5, batch_size=4, **CHUNKS))
    for key, (b_latents, b_meta) in items(batched).items():
        np.testing.assert_allclose(b_latents, got[key][0], atol=1e-5)
        assert b_meta["padding_mask"] == got[key][1]["padding_mask"]
    # stats.json: mean and std over the unpadded frames of every item, float64
    frames = np.concatenate(
        [x[:, np.array(m["padding_mask"], bool)].astype(np.float64) for x, m in got.values()], 1
    )
    stats = json.loads((out / "stats.json").read_text())
    assert stats["frames"] == frames.shape[1] == 600 + 1000 * 2 + 1000 + 800 + 1000 + 400
    np.testing.assert_allclose(stats["mean"], frames.mean(1), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(stats["std"], frames.std(1), rtol=1e-12)
    assert stats["global_std"] == pytest.approx(frames.std(), rel=1e-12)
    assert stats["scale"] == stats["global_std"]
    assert stats["global_mean"] == pytest.approx(frames.mean(), rel=1e-12)
    details = json.loads((out / "details.json").read_text())
    assert details["status"] == "complete" and details["sample_size"] == 8000
    assert details["counts"] == {"files": 3, "items": 7, "written": 7, "skipped_files": 0,
                                 "failed": 0}  # fmt: skip


def test_moments_merge_is_exact_in_any_split():
    rng = np.random.default_rng(0)
    parts = [rng.normal(3.0, 2.0, (4, n)) for n in (5, 17, 1, 40)]
    whole, split_a, split_b = Moments(), Moments(), Moments()
    for i, p in enumerate(parts):
        whole.add(p)
        (split_a if i % 2 else split_b).add(p)
    split_b.merge(Moments.from_state(split_a.to_state()))
    x = np.concatenate(parts, 1)
    for m in (whole, split_b):
        s = m.summary()
        np.testing.assert_allclose(s["mean"], x.mean(1), rtol=1e-13)
        np.testing.assert_allclose(s["std"], x.std(1), rtol=1e-13)
        assert s["global_std"] == pytest.approx(x.std(), rel=1e-13)


def test_codes_of_a_discrete_model_equal_audioae_encode(model_dir, data, tmp_path):
    fsq = make_export(tmp_path / "fsq", 0, "bottleneck=fsq")
    out = tmp_path / "pre"
    pe.pre_encode(str(fsq), data, out, pe.Options(codes=True, **CHUNKS))
    chunking = ("--chunk-size", "64", "--overlap", "16", "--device", "cpu", "--format", "npy")
    encode_main([str(fsq), str(data / "a.wav"), "--out", str(tmp_path / "enc"), *chunking])
    codes, meta = items(out)[("a.wav", 0)]
    assert codes.dtype == np.int64 and meta["latents"] == "codes"
    np.testing.assert_array_equal(codes, np.load(tmp_path / "enc" / "a.codes.npy"))
    assert not (out / "stats.json").exists()  # statistics are of continuous latents
    with pytest.raises(AudioAEError, match="--codes: the model's bottleneck is continuous"):
        pe.pre_encode(str(model_dir), data, tmp_path / "x", pe.Options(codes=True, **CHUNKS))


def test_command_errors_are_one_line(model_dir, tmp_path, capsys):
    from audioae.cli.pre_encode import main

    with pytest.raises(SystemExit) as code:
        main([str(model_dir), str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    assert code.value.code == 2
    said = capsys.readouterr().err.strip()
    assert said == f"audioae-pre-encode: {tmp_path / 'nothing'}: not a folder of audio files"


def test_unreadable_files_are_listed_and_skipped(model_dir, data, tmp_path):
    src = tmp_path / "audio"
    src.mkdir()
    tone(src / "good.wav", 16000, 2, 0.3)
    (src / "broken.wav").write_bytes(b"RIFF\x00\x00not audio")
    with pytest.warns(UserWarning, match=r"broken\.wav: cannot read audio.*; skipped"):
        details = pe.pre_encode(str(model_dir), src, tmp_path / "out", pe.Options(**CHUNKS))
    assert details["counts"]["failed"] == 1 and details["counts"]["items"] == 1
    assert details["failures"][0]["path"] == str(src / "broken.wav")
    assert [rel for rel, _ in items(tmp_path / "out")] == ["good.wav"]


def test_refuses_to_mix_models_unless_forced(model_dir, data, tmp_path):
    out = tmp_path / "out"
    pe.pre_encode(str(model_dir), data, out, pe.Options(**CHUNKS))
    other = make_export(tmp_path / "other", seed=1)
    with pytest.raises(AudioAEError, match="model_hash"):
        pe.pre_encode(str(other), data, out, pe.Options(**CHUNKS))
    with pytest.raises(AudioAEError, match="seconds=None"):
        pe.pre_encode(str(model_dir), data, out, pe.Options(seconds=0.5, **CHUNKS))
    pe.pre_encode(str(other), data, out, pe.Options(force=True, **CHUNKS))
    hashes = {m["model_hash"] for _, m in items(out).values()}
    assert hashes == {json.loads((out / "stats.json").read_text())["model_hash"]}
    assert len(items(out)) == 3


def test_restart_after_a_kill_writes_what_an_uninterrupted_run_writes(
    model_dir, data, tmp_path, monkeypatch
):
    opt = pe.Options(seconds=0.5, batch_size=2, **CHUNKS)
    pe.pre_encode(str(model_dir), data, tmp_path / "whole", opt)
    out = tmp_path / "killed"
    write = pe.write_item
    calls = []

    def killed_after_five(folder, meta, array, existing):
        calls.append(meta["relpath"])
        if len(calls) == 6:  # the .npy of the sixth item lands, then the process dies
            np.save(folder / f"{pe.item_id(meta['relpath'], meta['crop'])}.npy", array)
            (folder / ".tmp-999-half.npy").write_bytes(b"half")  # as SIGKILL leaves it
            raise KeyboardInterrupt
        write(folder, meta, array, existing)

    monkeypatch.setattr(pe, "write_item", killed_after_five)
    with pytest.raises(KeyboardInterrupt):
        pe.pre_encode(str(model_dir), data, out, opt)
    assert json.loads((out / "details.json").read_text())["status"] == "running"
    monkeypatch.setattr(pe, "write_item", write)
    details = pe.pre_encode(str(model_dir), data, out, opt)
    # groups of batch_size files: a.wav + c.wav (5 crops) were complete, sub/b.flac was not
    assert details["counts"]["skipped_files"] == 2
    assert details["counts"]["items"] == 7 and details["counts"]["written"] == 2
    assert not list(out.glob("*/.tmp-*"))
    whole, resumed = items(tmp_path / "whole"), items(out)
    assert whole.keys() == resumed.keys()
    for key in whole:
        np.testing.assert_array_equal(whole[key][0], resumed[key][0])  # bitwise
        assert whole[key][1] == resumed[key][1]
    assert (out / "stats.json").read_text() == (tmp_path / "whole" / "stats.json").read_text()


@pytest.mark.slow
def test_two_processes_cover_every_file_once_with_the_same_stats(model_dir, data, tmp_path):
    single = tmp_path / "single"
    pe.pre_encode(str(model_dir), data, single, pe.Options(seconds=0.5, **CHUNKS))
    launch = [
        str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "-m", "audioae.cli.pre_encode", str(model_dir), str(data),
        "--out", str(tmp_path / "two"), "--seconds", "0.5", "--chunk-size", "64",
        "--overlap", "16", "--device", "cpu",
    ]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = tmp_path / "two"
    by_folder = {f.name: {json.loads(j.read_text())["relpath"] for j in f.glob("*.json")}
                 for f in two.iterdir() if f.is_dir()}  # fmt: skip
    assert sorted(by_folder) == ["0", "1"]
    assert not by_folder["0"] & by_folder["1"]  # every file in one process only
    assert by_folder["0"] | by_folder["1"] == {"a.wav", "c.wav", os.path.join("sub", "b.flac")}
    assert items(two).keys() == items(single).keys()  # every crop exactly once
    s1, s2 = (json.loads((d / "stats.json").read_text()) for d in (single, two))
    for key in ("mean", "std", "global_mean", "global_std", "scale"):
        np.testing.assert_allclose(s2[key], s1[key], rtol=1e-6, atol=1e-9)
    assert s1["frames"] == s2["frames"] and s1["items"] == s2["items"] == 7


def test_export_stores_latent_stats(model_dir, data, tmp_path):
    pe.pre_encode(str(model_dir), data, tmp_path / "pre", pe.Options(**CHUNKS))
    stats = tmp_path / "pre" / "stats.json"
    export(model_dir, tmp_path / "exp", latent_stats=stats)
    assert read_latent_stats(tmp_path / "exp") == json.loads(stats.read_text())
    assert read_latent_stats(model_dir) is None
    other = make_export(tmp_path / "other", seed=1)
    with pytest.raises(AudioAEError, match="latent statistics of model"):
        export(other, tmp_path / "exp2", latent_stats=stats)
    assert not (tmp_path / "exp2").exists()


SAT_PYTHON = Path(os.environ.get("AUDIOAE_SAT_PYTHON", "/tmp/satvenv/bin/python"))
SAT_READ = """
import json, sys
from stable_audio_tools.data.dataset import LatentDatasetConfig, PreEncodedDataset
ds = PreEncodedDataset([LatentDatasetConfig(id="x", path=sys.argv[1])], latent_crop_length=50,
                       random_crop=True)
out = {}
for i in range(len(ds)):
    latents, info = ds[i]
    mask = info["padding_mask"][0]
    out[ds.filenames[i][0]] = {"read": info["latent_filename"], "shape": list(latents.shape),
                            "valid": int(mask.sum()), "start": info["latent_crop_start"],
                            "relpath": info["relpath"], "seconds_total": info["seconds_total"]}
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(not SAT_PYTHON.exists(), reason=f"no stable-audio-tools venv at {SAT_PYTHON}")
def test_stable_audio_tools_reads_the_folder(model_dir, data, tmp_path):
    """SAT's own PreEncodedDataset (its venv, docs/benchmarks.md) on audioae-pre-encode's output."""
    out = tmp_path / "pre"
    pe.pre_encode(str(model_dir), data, out, pe.Options(seconds=0.5, **CHUNKS))
    proc = subprocess.run([str(SAT_PYTHON), "-c", SAT_READ, str(out)], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    read = json.loads(proc.stdout.strip().splitlines()[-1])
    ours = {pe.item_id(*key): meta for key, (_, meta) in items(out).items()}
    assert len(read) == len(ours) == 7
    for name, item in read.items():
        assert item["read"] == name  # SAT replaces an unreadable item by another: none was
        meta = ours[Path(name).stem]
        assert item["shape"] == [8, 50] and item["relpath"] == meta["relpath"]
        assert item["seconds_total"] == meta["seconds_total"]
        assert item["valid"] == min(50, sum(meta["padding_mask"]) - item["start"])


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _refused(argv: list[str], capsys) -> str:
    """audioae-pre-encode ARGV's one-line error (exit status 2)."""
    from audioae.cli.pre_encode import main

    with pytest.raises(SystemExit) as code:
        main(argv)
    said = capsys.readouterr().err.strip()
    assert code.value.code == 2 and "\n" not in said and "Traceback" not in said, said
    return said


def test_force_replaces_only_what_pre_encode_wrote(model_dir, data, tmp_path, capsys):
    """--force re-encodes; the user's files in OUT, in digit-named folders too, stay."""
    from audioae.cli.pre_encode import main

    out = tmp_path / "lib"
    args = [str(data), "--out", str(out), "--chunk-size", "64", "--overlap", "16"]
    main([str(model_dir), *args, "--device", "cpu"])
    mine = {"2019/song.json": b'{"title": "mine"}', "2019/song.npy": b"\x93NUMPY mine",
            "0/notes.json": b"{}", "0/0123456789abcdef.npy": b"not an item"}  # fmt: skip
    for name, content in mine.items():
        (out / name).parent.mkdir(exist_ok=True)
        (out / name).write_bytes(content)
    other = make_export(tmp_path / "other", seed=1)
    main([str(other), *args, "--device", "cpu", "--force"])
    assert {k: v for k, v in _files(out).items() if k in mine} == mine
    written = [
        json.loads(js.read_text()) for js in out.glob("*/*.json") if pe.ITEM.fullmatch(js.name)
    ]
    hashes = {meta["model_hash"] for meta in written if "model_hash" in meta}
    assert len(written) == 3 and hashes == {
        json.loads((out / "stats.json").read_text())["model_hash"]
    }


def test_latents_never_go_into_the_input_folder_or_one_with_audio(
    model_dir, data, tmp_path, capsys
):
    before = _files(data)
    said = _refused([str(model_dir), str(data), "--out", str(data), "--force"], capsys)
    assert said == (
        f"audioae-pre-encode: --out {data}: it is the input folder {data}; write the latents "
        "into a folder of their own"
    )
    said = _refused([str(model_dir), str(data / "sub"), "--out", str(data), "--force"], capsys)
    assert f"--out {data}: it holds the input folder {data / 'sub'}" in said
    assert _files(data) == before
    lib = tmp_path / "lib"
    (lib / "2019").mkdir(parents=True)
    tone(lib / "2019" / "song.wav", 16000, 2, 0.2)
    kept = _files(lib)
    said = _refused([str(model_dir), str(data), "--out", str(lib), "--force"], capsys)
    assert f"--out {lib}: it holds audio ({lib / '2019' / 'song.wav'})" in said
    assert _files(lib) == kept


@pytest.mark.parametrize("name", ["details.json", "stats.json"])
def test_a_details_or_stats_file_of_someone_else_is_never_replaced(
    model_dir, data, tmp_path, capsys, name
):
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text('{"mine": true}\n')
    said = _refused([str(model_dir), str(data), "--out", str(out), "--force"], capsys)
    assert f"{out / name}: not written by audioae-pre-encode" in said
    assert _files(out) == {name: b'{"mine": true}\n'}
