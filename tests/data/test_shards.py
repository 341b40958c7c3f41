"""data=webdataset: tar shards written here with webdataset's TarWriter."""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

pytest.importorskip("webdataset", reason="the [data] extra")
from webdataset import TarWriter

from audioae.data import DataError
from audioae.data.shards import Shards
from audioae.train.loop import micro_batches
from conftest import run_cli

SR, SIZE = 16000, 2048
FORMATS = ("wav", "flac", "ogg")


def encode(x: np.ndarray, sr: int, fmt: str) -> bytes:
    out = io.BytesIO()
    sf.write(out, x, sr, format=fmt.upper())
    return out.getvalue()


def write_shards(folder: Path, count: int, members: int = 3, sr: int = SR) -> list[Path]:
    """`count` shards of `members` samples each (0.5 s of stereo noise, wav/flac/ogg in turn,
    with .json metadata naming shard and member)."""
    rng = np.random.default_rng(0)
    paths = []
    for s in range(count):
        path = folder / f"shard-{s:03d}.tar"
        with TarWriter(str(path)) as w:
            for m in range(members):
                fmt = FORMATS[(s + m) % 3]
                x = (0.3 * rng.standard_normal((sr // 2, 2))).astype(np.float32)
                meta = json.dumps({"shard": s, "member": m}).encode()
                w.write({"__key__": f"s{s:03d}m{m}", fmt: encode(x, sr, fmt), "json": meta})
        paths.append(path)
    return paths


def shards(folder: Path, count: int, **kw) -> Shards:
    return Shards(str(folder / f"shard-{{000..{count - 1:03d}}}.tar"), SR, 2, SIZE, **kw)


@pytest.fixture
def six(tmp_path) -> Path:
    write_shards(tmp_path, 6)
    return tmp_path


def keys(dataset: Shards, epoch: int = 0) -> list[str]:
    return [m.key for m in dataset.epoch(epoch)]


def test_items_are_crops_with_their_metadata(six):
    d = shards(six, 6)
    assert len(d.urls) == 6 and d.held_out_names == []
    first = next(d.samples())
    assert first.audio.shape == (2, SIZE) and first.audio.dtype == torch.float32
    assert first.metadata == {"shard": int(first.key[1:4]), "member": int(first.key[-1])}
    assert next(iter(d)).shape == (2, SIZE)
    # one epoch is every sample once, in an order the buffer shuffles
    epoch = keys(d)
    assert sorted(epoch) == [f"s{s:03d}m{m}" for s in range(6) for m in range(3)]
    assert epoch != keys(shards(six, 6, shuffle=0))


def test_deterministic_per_seed_and_reseeded_by_resume(six):
    a, b = shards(six, 6), shards(six, 6)
    take = [m.audio for m, _ in zip(a.samples(), range(20))]
    again = [m.audio for m, _ in zip(b.samples(), range(20))]
    for x, y in zip(take, again):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert keys(a.resume(5)) == keys(b.resume(5)) != keys(a)
    assert keys(shards(six, 6, seed=1)) != keys(a)
    # epochs go on in new orders; crops differ between epochs
    assert keys(a, 1) != keys(a, 0) and sorted(keys(a, 1)) == sorted(keys(a, 0))


def test_several_crops_per_sample(six):
    got = list(shards(six, 6, crops=3, shuffle=0).epoch(0))
    assert len({m.key for m in got[:3]}) == 1  # a sample's crops come together (no shuffle)
    assert sorted({m.key for m in got}) == sorted(keys(shards(six, 6))) and len(got) == 54
    assert not torch.equal(got[0].audio, got[1].audio)


@pytest.mark.parametrize("count", [6, 3])  # more shards than readers, and fewer
def test_readers_split_the_shards_disjointly_and_cover_them(tmp_path, count):
    write_shards(tmp_path, count)
    d = shards(tmp_path, count)
    seen = {}
    for r in range(4):  # 2 processes x 2 workers, as (rank * workers + worker, world * workers)
        reader = copy.copy(d)
        reader.rank, reader.world = r, 4
        seen[r] = [(m.url, m.key) for m in reader.epoch(0)]
    every = [k for r in seen for _, k in seen[r]]
    assert sorted(every) == [f"s{s:03d}m{m}" for s in range(count) for m in range(3)]
    if count >= 4:  # whole shards: no shard is read by two readers
        urls = [{u for u, _ in seen[r]} for r in seen]
        assert sum(len(u) for u in urls) == count == len(set().union(*urls))


def test_a_corrupt_member_is_one_warning_and_skipped(tmp_path):
    write_shards(tmp_path, 1)
    path = tmp_path / "shard-001.tar"
    with TarWriter(str(path)) as w:
        w.write({"__key__": "good", "flac": encode(np.full((SR, 1), 0.5, np.float32), SR, "flac")})
        w.write({"__key__": "broken", "wav": b"RIFF....WAVEfmt not really a wav file"})
    d = shards(tmp_path, 2)
    with pytest.warns(UserWarning, match=r"skipping member broken\.wav of .*shard-001\.tar"):
        assert sorted(keys(d)) == ["good", "s000m0", "s000m1", "s000m2"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keys(d, 1)
    assert not caught  # warned once (per reader), then skipped quietly


def test_a_truncated_shard_is_one_warning_and_reading_goes_on(six):
    bad = six / "shard-002.tar"
    bad.write_bytes(bad.read_bytes()[:30000])  # cut inside its second member
    d = shards(six, 6)
    with pytest.warns(UserWarning, match=r"skipping the rest of shard .*shard-002\.tar"):
        got = keys(d)
    assert len(got) >= 15 and "s002m2" not in got and "s005m2" in got


def test_pipe_commands_and_missing_shards(six):
    urls = [f"pipe:cat {six}/shard-{{000..001}}.tar", str(six / "nope.tar")]
    with pytest.warns(UserWarning, match=r"skipping 1 missing shard\(s\) of 3: .*nope\.tar"):
        d = Shards(urls, SR, 2, SIZE)
    assert sorted(keys(d)) == [f"s00{s}m{m}" for s in range(2) for m in range(3)]
    with pytest.raises(DataError, match="no shards found"):
        Shards(str(six / "x-{0..3}.tar"), SR, 2, SIZE)


def test_nothing_readable_is_one_error_at_start_up(tmp_path):
    with TarWriter(str(tmp_path / "a.tar")) as w:
        w.write({"__key__": "x", "txt": b"no audio here"})
    with pytest.raises(DataError, match=r"no readable audio member .* in .*a\.tar"):
        Shards(str(tmp_path / "a.tar"), SR, 2, SIZE)


def test_resampling_and_silence_follow_audio_dir(tmp_path):
    with TarWriter(str(tmp_path / "a.tar")) as w:
        w.write({"__key__": "quiet", "wav": encode(np.zeros((48000, 2), np.float32), 48000, "wav")})
        t = np.arange(48000) / 48000
        tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        w.write({"__key__": "tone", "wav": encode(tone, 48000, "wav")})  # mono 48 kHz
    d = Shards(str(tmp_path / "a.tar"), SR, 2, SIZE, max_tries=2)
    (member,) = list(d.epoch(0))  # the silent one is skipped
    assert member.key == "tone" and member.audio.shape == (2, SIZE)
    torch.testing.assert_close(member.audio[0], member.audio[1])
    peak = np.abs(np.fft.rfft(member.audio[0].numpy())).argmax() * SR / SIZE
    assert abs(peak - 440) < SR / SIZE


def test_held_out_shards_never_train(six):
    d = shards(six, 6, holdout=2)
    assert len(d.held_out_names) == 2 and not set(d.held_out_names) & set(d.urls)
    held = d.held_out()
    assert held[0].shape == (2, SIZE) and held[2**20 + 3].shape == (2, SIZE)
    assert {url for url, _ in held._load()} == set(d.held_out_names)
    trained = {k[:4] for k in keys(d)}
    held_keys = {Path(u).stem.replace("shard-", "s") for u in d.held_out_names}
    assert trained.isdisjoint(held_keys) and len(trained) == 4
    torch.testing.assert_close(held[7], shards(six, 6, holdout=2).held_out()[7], rtol=0, atol=0)
    # a held-out folder of audio files, as trainer.val_path gives
    folder = six / "val"
    folder.mkdir()
    sf.write(folder / "a.wav", np.full((SR, 2), 0.25, np.float32), SR)
    assert d.held_out(str(folder))[0].shape == (2, SIZE)


def test_the_training_loader_batches_shards_in_workers(six):
    config = OmegaConf.create({"trainer": {"batch_size": 3, "num_workers": 2, "seed": 0}})
    cpu = SimpleNamespace(process_index=0, num_processes=1, device=torch.device("cpu"))
    batches = micro_batches(shards(six, 6), config, 0, cpu)
    got = [next(batches) for _ in range(4)]
    assert all(b.shape == (3, 2, SIZE) for b in got)
    # worker w gives micro-batches w, w + 2, ...: its own shards
    again = micro_batches(shards(six, 6), config, 0, cpu)
    for a, b in zip(got, [next(again) for _ in range(4)]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


class Tagged(Shards):
    """Yields (reader, url, key) of one epoch, to see who read what."""

    def __iter__(self):
        reader, _ = self.readers()
        for m in self.epoch(0):
            yield reader, m.url, m.key


def _process(rank: int, store: str, folder: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=store, rank=rank, world_size=2)
    d = Tagged(f"{folder}/shard-{{000..007}}.tar", SR, 2, SIZE)
    got = [
        (int(r), u, k)
        for batch in DataLoader(d, batch_size=None, num_workers=2)
        for r, u, k in [batch]
    ]
    torch.save(got, f"{out}.{rank}")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_processes_of_two_workers_read_disjoint_shards(tmp_path):
    write_shards(tmp_path, 8)
    out = str(tmp_path / "seen")
    args = (f"file://{tmp_path}/store", str(tmp_path), out)
    torch.multiprocessing.spawn(_process, args=args, nprocs=2)
    seen = torch.load(f"{out}.0") + torch.load(f"{out}.1")
    assert {r for r, _, _ in seen} == {0, 1, 2, 3}
    assert sorted(k for _, _, k in seen) == [f"s{s:03d}m{m}" for s in range(8) for m in range(3)]
    readers_of = {}
    for r, url, _ in seen:
        readers_of.setdefault(url, set()).add(r)
    assert len(readers_of) == 8 and all(len(r) == 1 for r in readers_of.values())


@pytest.mark.slow
def test_audioae_train_on_shards_with_two_workers(tmp_path):
    write_shards(tmp_path, 4)
    run = tmp_path / "run"
    urls = f"data.urls='{tmp_path}/shard-{{000..003}}.tar'"
    args = ("experiment=smoke", "data=webdataset", urls, "trainer.num_workers=2")
    run_cli("audioae-train", *args, "trainer.val_every=2", f"hydra.run.dir={run}", cwd=tmp_path)
    assert (run / "checkpoints/step_00000002/model.safetensors").exists()
    (held,) = (run / "holdout.txt").read_text().split()
    assert held.startswith(str(tmp_path / "shard-"))


def test_shards_in_an_augmented_mix_through_the_training_loader(six):
    """data=mix over shards and a map-style source, augmented: the loop resumes the whole
    stack (IterableMix.resume -> Shards.resume), deterministic per start, reseeded by it."""
    from audioae.data.augment import Augment, augmented
    from audioae.data.mix import IterableMix, mix
    from audioae.data.synthetic import SyntheticMusic

    def stack():
        sources = {"shards": shards(six, 6), "synth": SyntheticMusic(SR, 2, SIZE, seed=0)}
        return augmented(mix(sources, {"shards": 0.5, "synth": 0.5}), Augment(SR, polarity_p=0.5))

    config = OmegaConf.create({"trainer": {"batch_size": 2, "num_workers": 0, "seed": 0}})
    cpu = SimpleNamespace(process_index=0, num_processes=1, device=torch.device("cpu"))
    assert isinstance(stack().dataset, IterableMix)
    first = [next(micro_batches(stack(), config, s, cpu)) for s in (0, 0, 3)]
    assert all(b.shape == (2, 2, SIZE) and b.abs().max() > 0 for b in first)
    torch.testing.assert_close(first[0], first[1], rtol=0, atol=0)  # same start, same data
    assert not torch.equal(first[0], first[2])  # a resumed stream is reseeded
