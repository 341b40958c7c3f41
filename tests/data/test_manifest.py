"""Manifests (audioae-manifest, data.manifest, the cached scan) and duration-weighted draws."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audioae.data import AudioDir
from audioae.data import manifest as manifests
from audioae.data.audio_dir import EXTENSIONS, DataError, MissingDataError
from audioae.data.manifest import CACHE_NAME, ManifestError, make_manifest
from conftest import run_cli


def _write(path: Path, frames: int, rate: int, channels: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, (frames, channels)).astype(np.float32)
    sf.write(path, noise, rate)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "audio"
    _write(root / "a.wav", 8000, 8000, 1, 1)
    _write(root / "sub" / "b.flac", 12000, 16000, 2, 2)
    _write(root / "sub" / "c.ogg", 22050, 22050, 2, 3)
    (root / "broken.wav").write_bytes(b"RIFF nonsense")
    sf.write(root / "empty.wav", np.zeros((0, 1), np.float32), 8000)
    (root / "notes.txt").write_text("not audio")
    return root


def _fresh(root: Path) -> list[dict]:
    """What soundfile says about each audio file, read here directly."""
    rows = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower().lstrip(".") in EXTENSIONS):
        name = path.relative_to(root).as_posix()
        try:
            info = sf.info(path)
        except RuntimeError:
            rows.append({"path": name, "error": True})
            continue
        if info.frames == 0:
            rows.append({"path": name, "error": True})
            continue
        rows.append(
            {
                "path": name,
                "frames": info.frames,
                "sample_rate": info.samplerate,
                "channels": info.channels,
                "duration": info.frames / info.samplerate,
            }
        )
    return rows


def _rows(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if "error" in record:
            out.append({"path": record["path"], "error": True})
        else:
            out.append({k: record[k] for k in ("path", "frames", "sample_rate", "channels")})
            out[-1]["duration"] = record["duration"]
    return out


@pytest.mark.slow  # two commands in subprocesses (torch imports)
def test_cli_manifest_equals_a_fresh_scan_and_refuses_to_overwrite(folder, tmp_path):
    out = tmp_path / "m.jsonl"
    result = run_cli(
        "audioae-manifest", str(folder), "--out", str(out), "--workers", "3", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert _rows(out) == _fresh(folder)
    assert [r["path"] for r in _rows(out)] == [
        "a.wav",
        "broken.wav",
        "empty.wav",
        "sub/b.flac",
        "sub/c.ogg",
    ]
    # failures: in the file (with their reason) and printed, one line each
    records = [json.loads(line) for line in out.read_text().splitlines()]
    errors = {r["path"]: r.get("error") for r in records}
    assert errors["empty.wav"] == "empty (no audio frames)"
    assert errors["broken.wav"].startswith("unreadable")
    assert "broken.wav" in result.stderr and "empty.wav" in result.stderr
    assert "3 file(s)" in result.stdout and "2 unusable" in result.stdout

    again = run_cli("audioae-manifest", str(folder), "--out", str(out), cwd=tmp_path, check=False)
    assert again.returncode == 2 and "exists" in again.stderr and "--force" in again.stderr
    make_manifest(folder, out, EXTENSIONS, force=True)  # what --force does
    with pytest.raises(Exception, match="exists; --force overwrites"):
        make_manifest(folder, out, EXTENSIONS)


def test_the_process_pool_scans_what_one_process_does(folder, monkeypatch):
    one = manifests.build_manifest(str(folder), EXTENSIONS, workers=1)
    monkeypatch.setattr(manifests, "_PARALLEL_FROM", 1)
    assert manifests.build_manifest(str(folder), EXTENSIONS, workers=2) == one
    assert [e.path for e in one] == ["a.wav", "broken.wav", "empty.wav", "sub/b.flac", "sub/c.ogg"]


def test_audio_dir_from_a_manifest_opens_no_file_at_start(folder, tmp_path, monkeypatch):
    out = tmp_path / "m.jsonl"
    make_manifest(folder, out, EXTENSIONS)
    kw = dict(sample_rate=8000, channels=2, sample_size=1024, seed=3, holdout=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scanned = AudioDir(str(folder), **kw)
        calls = []
        monkeypatch.setattr(sf, "info", lambda *a, **k: calls.append(a) or 1 / 0)
        listed = AudioDir(str(folder), manifest=str(out), **kw)
    assert calls == []
    assert listed.files == scanned.files
    assert all(torch.equal(listed[n], scanned[n]) for n in range(6))


def test_manifest_failures_are_warned_by_audio_dir(folder, tmp_path):
    out = tmp_path / "m.jsonl"
    make_manifest(folder, out, EXTENSIONS)
    with pytest.warns(UserWarning) as record:
        AudioDir(str(folder), 8000, 1, 256, manifest=str(out), holdout=0)
    text = " ".join(str(w.message) for w in record)
    assert "skipping unreadable file" in text and "broken.wav" in text
    assert "skipping empty file" in text and "empty.wav" in text


def test_bad_manifests_are_one_line_errors(folder, tmp_path):
    with pytest.raises(MissingDataError, match="manifest not found"):
        AudioDir(str(folder), 8000, 1, 256, manifest=str(tmp_path / "none.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"path": "a.wav", "frames": 1, "sample_rate": 8000, "channels": 1}\n{oops\n')
    with pytest.raises(ManifestError, match=r"bad.jsonl, line 2"):
        AudioDir(str(folder), 8000, 1, 256, manifest=str(bad))
    only_bad = tmp_path / "only_bad.jsonl"
    only_bad.write_text('{"path": "broken.wav", "error": "unreadable: x"}\n')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match=r"1 file\(s\) listed in .*only_bad\.jsonl"):
            AudioDir(str(folder), 8000, 1, 256, manifest=str(only_bad))


def test_the_cache_probes_only_new_or_changed_files(folder, monkeypatch):
    probed = []
    real = manifests.probe

    def counting(root, name, stat=None):
        probed.append(name)
        return real(root, name, stat)

    monkeypatch.setattr(manifests, "probe", counting)
    kw = dict(sample_rate=8000, channels=1, sample_size=256, holdout=0, cache_manifest=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = AudioDir(str(folder), **kw)
        assert len(probed) == 5 and (folder / CACHE_NAME).exists()
        probed.clear()
        AudioDir(str(folder), **kw)
        assert probed == []  # unchanged: nothing opened
        _write(folder / "a.wav", 16000, 8000, 1, 9)  # changed: twice as long
        os.utime(folder / "a.wav", ns=(1, 1))
        _write(folder / "new.flac", 4000, 8000, 1, 4)
        changed = AudioDir(str(folder), **kw)
    assert sorted(probed) == ["a.wav", "new.flac"]
    frames = {os.path.basename(f.path): f.frames for f in changed.files}
    assert frames["a.wav"] == 16000 and frames["new.flac"] == 4000
    assert len(changed.files) == len(first.files) + 1
    # the cache itself is never taken for audio
    assert all(CACHE_NAME not in f.path for f in changed.files)


def test_a_read_only_folder_still_starts(folder, monkeypatch):
    def refuse(path, entries):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(manifests, "write", refuse)
    with pytest.warns(UserWarning, match="cannot cache the scan"):
        ds = AudioDir(str(folder), 8000, 1, 256, holdout=0, cache_manifest=True)
    assert len(ds.files) == 3


def test_duration_weighted_draws(tmp_path):
    # 10 s against 0.5 s and 1 s: P = 10/11.5, 0.5/11.5, 1/11.5
    root = tmp_path / "w"
    for name, seconds in (("long.wav", 10.0), ("short.wav", 0.5), ("mid.wav", 1.0)):
        _write(root / name, int(seconds * 1000), 1000, 1, len(name))
    kw = dict(sample_rate=1000, channels=1, sample_size=100, seed=5, holdout=0)
    ds = AudioDir(str(root), weight_by_duration=True, **kw)
    names = [os.path.basename(f.path) for f in ds.files]
    firsts = [next(ds.candidates(n)) for n in range(4000)]
    share = np.bincount(firsts, minlength=3) / 4000
    expected = {"long.wav": 10 / 11.5, "short.wav": 0.5 / 11.5, "mid.wav": 1 / 11.5}
    for i, name in enumerate(names):
        assert abs(share[i] - expected[name]) < 0.02, (name, share[i])
    # unweighted: each file once per epoch
    plain = AudioDir(str(root), **kw)
    assert sorted(next(plain.candidates(n)) for n in range(3)) == [0, 1, 2]
    # deterministic per draw: another instance, any order, gives the same items
    other = AudioDir(str(root), weight_by_duration=True, **kw)
    for n in (17, 3, 999, 0):
        assert torch.equal(ds[n], other[n])
