import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader
from torchaudio.functional import resample

from audioae.data import AudioDir, DataError, StepBatches
from audioae.data.audio_dir import holdout_key, split_holdout


def _write(path: Path, data: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    """Float WAV by default: exact float32 samples (NaN, inf and > 1 included)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if subtype is None and path.suffix.lower() == ".wav":
        subtype = "FLOAT"
    sf.write(path, data.astype(np.float32), sample_rate, subtype=subtype)
    return path


def _noise(frames: int, channels: int, seed: int = 0, level: float = 0.5) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-level, level, (frames, channels))


def _messages(record) -> list[str]:
    return [str(w.message) for w in record]


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """wav/flac/ogg at several rates and channel counts, nested, with an upper-case extension."""
    _write(tmp_path / "a.wav", _noise(66150, 1, 1), 22050)
    _write(tmp_path / "sub" / "b.flac", _noise(96000, 2, 2), 48000, subtype="PCM_24")
    _write(tmp_path / "sub" / "deeper" / "c.WAV", _noise(88200, 4, 3), 44100)
    sf.write(tmp_path / "d.ogg", _noise(32000, 2, 4).astype(np.float32), 16000)
    return tmp_path


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_shapes_range_and_determinism(mixed, channels):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # channel-rule warnings; tested below
        ds = AudioDir(str(mixed), sample_rate=44100, channels=channels, sample_size=8192, seed=1)
        again = AudioDir(str(mixed), sample_rate=44100, channels=channels, sample_size=8192, seed=1)
        items = [ds[n] for n in range(8)]
        for n in reversed(range(8)):  # another order, another instance: the same items
            assert torch.equal(again[n], items[n])
    assert len(ds.files) == 4
    for x in items:
        assert x.shape == (channels, 8192)
        assert x.dtype == torch.float32
        assert x.abs().max() <= 1.0
        assert x.abs().max() > 0.1
    assert not torch.equal(items[0], items[4])


def test_each_epoch_uses_every_file_once_in_a_seeded_order(tmp_path):
    # Constant-level files: the level identifies the file an item came from.
    for i in range(5):
        _write(tmp_path / f"{i}.wav", np.full((4000, 1), 0.1 * (i + 1)), 8000)

    def order(seed: int, epoch: int) -> list[int]:
        ds = AudioDir(str(tmp_path), sample_rate=8000, channels=1, sample_size=1000, seed=seed)
        levels = [ds[n][0, 0].item() for n in range(5 * epoch, 5 * epoch + 5)]
        return [round(level * 10) - 1 for level in levels]

    assert sorted(order(0, 0)) == [0, 1, 2, 3, 4]
    assert sorted(order(0, 1)) == [0, 1, 2, 3, 4]
    assert order(0, 0) != order(0, 1) or order(0, 1) != order(0, 2)
    assert order(0, 0) != order(1, 0) or order(0, 1) != order(1, 1)


def test_short_file_is_zero_padded_exactly(tmp_path):
    data = _noise(1000, 2, 5)
    _write(tmp_path / "short.wav", data, 16000)
    ds = AudioDir(str(tmp_path), sample_rate=16000, channels=2, sample_size=4000)
    x = ds[0]
    assert torch.equal(x[:, :1000], torch.from_numpy(data.T.astype(np.float32)))
    assert torch.count_nonzero(x[:, 1000:]) == 0
    assert torch.equal(ds[1], x)  # nothing to crop: every draw is the same


def test_short_resampled_file_is_zero_padded_after_its_resampled_end(tmp_path):
    _write(tmp_path / "short.flac", _noise(1000, 1, 6), 22050)
    ds = AudioDir(str(tmp_path), sample_rate=44100, channels=1, sample_size=4096)
    x = ds[0]
    assert x.shape == (1, 4096)
    assert torch.count_nonzero(x[:, 2000:]) == 0  # 1000 frames at 22.05 kHz = 2000 at 44.1 kHz
    assert x[:, 1900:2000].abs().max() > 0.05


def test_long_file_is_cropped_at_varying_offsets(tmp_path):
    ramp = np.linspace(0.1, 0.9, 50000)[:, None]  # each value marks its position
    _write(tmp_path / "ramp.wav", ramp, 8000)
    ds = AudioDir(str(tmp_path), sample_rate=8000, channels=1, sample_size=1000)
    offsets = set()
    for n in range(10):
        x = ds[n][0].numpy()
        offset = int(np.argmin(np.abs(ramp[:, 0] - x[0])))
        np.testing.assert_array_equal(x, ramp[offset : offset + 1000, 0].astype(np.float32))
        offsets.add(offset)
    assert len(offsets) == 10


@pytest.mark.parametrize(("file_rate", "rate"), [(48000, 44100), (22050, 44100), (44100, 16000)])
def test_resampled_crop_matches_resampling_the_whole_file(tmp_path, file_rate, rate):
    t = np.arange(file_rate * 2) / file_rate
    chirp = 0.5 * np.sin(2 * np.pi * (200 * t + 900 * t**2))  # a unique, band-limited signal
    _write(tmp_path / "chirp.wav", chirp[:, None], file_rate)
    ds = AudioDir(str(tmp_path), sample_rate=rate, channels=1, sample_size=2048)
    whole = resample(torch.from_numpy(chirp[None].astype(np.float32)), file_rate, rate)[0]
    assert abs(whole.shape[0] - 2 * rate) <= 1
    size = whole.shape[0] + 2048
    for n in range(3):
        x = ds[n][0]
        # Locate the crop in the resampled file by cross-correlation, then compare exactly: the
        # crop is that window of the resampled file, edges included (it reads the kernel's reach).
        corr = torch.fft.irfft(torch.fft.rfft(whole, size) * torch.fft.rfft(x, size).conj(), size)
        j = int(corr[: whole.shape[0] - 2048 + 1].argmax())
        assert (whole[j : j + 2048] - x).abs().max() < 1e-5


def test_channel_rules(tmp_path):
    stereo = _noise(8000, 2, 7)
    _write(tmp_path / "stereo.wav", stereo, 8000)
    mono = AudioDir(str(tmp_path), sample_rate=8000, channels=1, sample_size=8000)[0]
    np.testing.assert_allclose(mono[0].numpy(), stereo.mean(axis=1), atol=1e-6)
    with pytest.warns(UserWarning, match="stereo.wav has 2 channels; tiling"):
        quad = AudioDir(str(tmp_path), sample_rate=8000, channels=4, sample_size=8000)[0]
    assert torch.equal(quad[2:], quad[:2])

    os.remove(tmp_path / "stereo.wav")
    _write(tmp_path / "mono.wav", _noise(8000, 1, 8), 8000)
    x = AudioDir(str(tmp_path), sample_rate=8000, channels=2, sample_size=8000)[0]
    assert torch.equal(x[0], x[1])

    os.remove(tmp_path / "mono.wav")
    four = _noise(8000, 4, 9)
    _write(tmp_path / "four.wav", four, 8000)
    ds = AudioDir(str(tmp_path), sample_rate=8000, channels=2, sample_size=8000)
    with pytest.warns(UserWarning, match="four.wav has 4 channels; keeping the first 2") as rec:
        x = ds[0]
        ds[1]  # warned once per file, not per item
    assert len(rec) == 1
    np.testing.assert_array_equal(x.numpy(), four[:, :2].T.astype(np.float32))


def test_corrupt_and_empty_files_are_skipped_with_one_warning_each(tmp_path):
    _write(tmp_path / "good.wav", _noise(8000, 1), 8000)
    (tmp_path / "corrupt.wav").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "empty.flac").write_bytes(b"")
    _write(tmp_path / "no_frames.wav", np.zeros((0, 1)), 8000)
    (tmp_path / ".hidden.wav").write_bytes(b"junk")  # hidden: never looked at
    (tmp_path / "notes.txt").write_text("not audio")  # not a listed extension
    with pytest.warns(UserWarning) as rec:
        ds = AudioDir(str(tmp_path), sample_rate=8000, channels=1, sample_size=1000)
    messages = _messages(rec)
    assert len(messages) == 3
    for name in ("corrupt.wav", "empty.flac", "no_frames.wav"):
        assert sum(name in m for m in messages) == 1, messages
    assert [os.path.basename(f.path) for f in ds.files] == ["good.wav"]
    assert ds[0].shape == (1, 1000)


def test_extensions_filter_and_hidden_folders(tmp_path):
    _write(tmp_path / "a.wav", _noise(8000, 1), 8000)
    _write(tmp_path / "b.flac", _noise(8000, 1), 8000)
    _write(tmp_path / ".cache" / "c.wav", _noise(8000, 1), 8000)
    ds = AudioDir(str(tmp_path), sample_rate=8000, channels=1, sample_size=100, extensions=[".WAV"])
    assert [os.path.basename(f.path) for f in ds.files] == ["a.wav"]


def test_folder_without_usable_audio_raises_naming_it(tmp_path):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF" + bytes(100))
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.warns(UserWarning), pytest.raises(DataError) as err:
        AudioDir(str(tmp_path), sample_rate=8000, channels=1, sample_size=100)
    message = str(err.value)
    assert str(tmp_path) in message
    assert "1 file(s) found" in message and "flac, mp3, ogg, wav" in message
    assert "\n" not in message

    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(DataError, match="0 file\\(s\\) found"):
        AudioDir(str(empty), sample_rate=8000, channels=1, sample_size=100)


def test_missing_folder_raises_naming_the_path(tmp_path):
    missing = tmp_path / "no" / "such" / "folder"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))) as err:
        AudioDir(str(missing), sample_rate=8000, channels=1, sample_size=100)
    assert isinstance(err.value, DataError)
    file = _write(tmp_path / "x.wav", _noise(100, 1), 8000)
    with pytest.raises(DataError, match="not a folder"):
        AudioDir(str(file), sample_rate=8000, channels=1, sample_size=100)


def test_silent_crops_are_rejected(tmp_path):
    # Half silence, half sound: a silent crop is replaced by another crop of the same file.
    data = np.concatenate([np.zeros(20000), _noise(20000, 1)[:, 0] * 0.1])[:, None]
    _write(tmp_path / "half.wav", data, 8000)
    ds = AudioDir(str(tmp_path), sample_rate=8000, channels=1, sample_size=2000)
    for n in range(20):
        assert ds[n].abs().max() >= 10 ** (-60 / 20)


def test_silent_file_is_replaced_by_another_file(tmp_path):
    _write(tmp_path / "loud.wav", np.full((4000, 1), 0.5), 8000)
    _write(tmp_path / "quiet.wav", np.full((4000, 1), 1e-4), 8000)  # -80 dBFS
    ds = AudioDir(str(tmp_path), sample_rate=8000, channels=1, sample_size=1000)
    for n in range(6):
        assert torch.all(ds[n] == 0.5)
    lenient = AudioDir(str(tmp_path), 8000, 1, 1000, silence_db=-90.0)
    assert {round(lenient[n][0, 0].item(), 4) for n in range(2)} == {0.5, 1e-4}


def test_all_silent_folder_raises_after_bounded_tries(tmp_path, monkeypatch):
    for i in range(30):
        _write(tmp_path / f"{i:02d}.wav", np.zeros((8000, 1)), 8000)
    ds = AudioDir(str(tmp_path), sample_rate=8000, channels=1, sample_size=500, max_tries=4)
    reads = []
    real_open = sf.SoundFile  # every crop opens its file once
    monkeypatch.setattr(sf, "SoundFile", lambda *a, **k: reads.append(a) or real_open(*a, **k))
    with pytest.raises(DataError, match=r"no crop above -60\.0 dBFS in 4 file"):
        ds[0]
    assert len(reads) == 4 * 4  # max_tries crops of max_tries files, then a clear error


def test_file_deleted_after_construction_is_warned_about_and_skipped(tmp_path):
    _write(tmp_path / "keep.wav", np.full((4000, 1), 0.5), 8000)
    gone = _write(tmp_path / "gone.wav", np.full((4000, 1), 0.25), 8000)
    ds = AudioDir(str(tmp_path), sample_rate=8000, channels=1, sample_size=1000)
    gone.unlink()
    with pytest.warns(UserWarning) as rec:
        items = [ds[n] for n in range(8)]
    messages = _messages(rec)
    assert len(messages) == 1 and "gone.wav" in messages[0]
    assert all(torch.all(x == 0.5) for x in items)

    for f in tmp_path.iterdir():
        f.unlink()
    with (
        pytest.warns(UserWarning, match="keep.wav"),
        pytest.raises(DataError, match="2 of 2 file\\(s\\) failed to decode"),
    ):
        ds[9]


def test_non_finite_samples_become_zero_with_one_warning(tmp_path):
    data = _noise(2000, 2, 3)
    data[100, 0], data[200, 1], data[300, 0] = np.nan, np.inf, -np.inf
    _write(tmp_path / "nan.wav", data, 8000)
    ds = AudioDir(str(tmp_path), sample_rate=8000, channels=2, sample_size=2000)
    with pytest.warns(UserWarning, match="nan.wav has NaN/inf") as rec:
        x = ds[0]
        ds[1]
    assert len(rec) == 1
    assert torch.isfinite(x).all()
    assert x[0, 100] == 0 and x[1, 200] == 0 and x[0, 300] == 0
    assert x[0, 101] == np.float32(data[101, 0])


def test_values_are_clamped(tmp_path):
    _write(tmp_path / "hot.wav", np.full((1000, 1), 3.0), 8000)  # float WAV may exceed 1
    x = AudioDir(str(tmp_path), sample_rate=8000, channels=1, sample_size=500)[0]
    assert torch.all(x == 1.0)


def test_bad_draw_number(tmp_path):
    _write(tmp_path / "a.wav", _noise(1000, 1), 8000)
    with pytest.raises(IndexError):
        AudioDir(str(tmp_path), sample_rate=8000, channels=1, sample_size=100)[-1]


def test_worker_processes_give_the_same_stream(mixed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = AudioDir(str(mixed), sample_rate=16000, channels=2, sample_size=1024, seed=2)
        loader = DataLoader(ds, batch_sampler=StepBatches(3, start=2), num_workers=2)
        it = iter(loader)
        batches = [next(it) for _ in range(2)]
        expected = [torch.stack([ds[n] for n in range(b, b + 3)]) for b in (6, 9)]
    for got, want in zip(batches, expected):
        assert torch.equal(got, want)


def _levels(tmp_path: Path, count: int, names: str = "{i:02d}.wav") -> dict[float, str]:
    """Constant-level files: the level of an item says which file it came from."""
    levels = {}
    for i in range(count):
        level = float(np.float32(0.01 * (i + 1)))
        name = names.format(i=i)
        _write(tmp_path / name, np.full((2000, 1), level), 8000)
        levels[level] = name
    return levels


def _source(ds, n: int) -> float:
    x = ds[n]
    assert torch.all(x == x[0, 0])
    return float(x[0, 0])


def test_training_items_never_come_from_held_out_files(tmp_path):
    levels = _levels(tmp_path, 30)
    ds = AudioDir(str(tmp_path), sample_rate=8000, channels=1, sample_size=500, holdout=0.2)
    held = set(ds.held_out_names)
    assert 1 <= len(held) < 30 and len(ds.files) + len(ds.held_out_files) == 30
    assert held == {os.path.basename(f.path) for f in ds.held_out_files}
    trained = {levels[_source(ds, n)] for n in range(300)}  # 10 epochs
    assert trained.isdisjoint(held)
    assert trained == set(levels.values()) - held  # every other file does train
    demos = ds.held_out()
    drawn = {levels[_source(demos, n)] for n in [*range(100), 2**20, 2**20 + 1]}
    assert drawn == held  # the held-out side: only, and all, held-out files


def test_held_out_split_is_deterministic_and_stable_when_files_are_added(tmp_path):
    names = [f"album{i % 7}/track {i}.flac" for i in range(400)]
    held = split_holdout(names, 0.05)
    assert held == split_holdout(list(reversed(names)), 0.05)
    assert 8 <= len(held) <= 35  # about 5% of 400 (hash-based, so not exactly)
    assert held == {n for n in names if holdout_key(n) < 0.05}
    more = names + [f"new/{i}.wav" for i in range(300)]
    assert split_holdout(more, 0.05) & set(names) == held  # no old file changes side
    # By count: the k lowest keys, whatever the order of the listing.
    assert split_holdout(names, 3) == set(sorted(names, key=holdout_key)[:3])

    # The same through AudioDir: independent of the seed and of where the folder lives.
    _levels(tmp_path / "a", 12, "sub/{i:02d}.wav")
    first = AudioDir(str(tmp_path / "a"), 8000, 1, 500, seed=0, holdout=0.3).held_out_names
    assert first == AudioDir(str(tmp_path / "a"), 8000, 1, 500, seed=9, holdout=0.3).held_out_names
    assert 1 <= len(first) < 12 and all(n.startswith("sub/") for n in first)
    os.rename(tmp_path / "a", tmp_path / "moved")
    _levels(tmp_path / "moved", 20, "sub/{i:02d}_new.wav")
    later = AudioDir(str(tmp_path / "moved"), 8000, 1, 500, holdout=0.3).held_out_names
    assert [n for n in later if not n.endswith("_new.wav")] == first


def test_held_out_rules_for_small_folders_counts_and_bad_values(tmp_path):
    assert split_holdout(["only.wav"], 0.05) == set()  # nothing to spare
    two = ["a.wav", "b.wav"]
    assert split_holdout(two, 0.05) == {min(two, key=holdout_key)}  # at least one held out
    assert split_holdout(two, 0.99) == {min(two, key=holdout_key)}  # at least one trains
    assert split_holdout(two, 0) == set() and split_holdout(two, 0.0) == set()
    for bad in (-0.1, 1.0, 2, True, "5%"):
        with pytest.raises(DataError, match="holdout"):
            split_holdout(two, bad)


def test_held_out_draws_without_held_out_files_are_other_crops(tmp_path):
    ramp = np.linspace(0.1, 0.9, 50000)[:, None]
    _write(tmp_path / "ramp.wav", ramp, 8000)
    ds = AudioDir(str(tmp_path), sample_rate=8000, channels=1, sample_size=1000, holdout=0.05)
    assert ds.held_out_names == [] and len(ds.files) == 1  # one file: all of it trains
    trained = {round(float(ds[n][0, 0]), 6) for n in range(20)}
    held = {round(float(ds.held_out()[n][0, 0]), 6) for n in range(20)}
    assert trained.isdisjoint(held)  # other random streams: not the training crops


def test_held_out_folder_gives_crops_of_its_files_only(tmp_path):
    levels = _levels(tmp_path / "train", 5)
    _write(tmp_path / "val" / "v.wav", np.full((2000, 2), 0.75), 8000)
    ds = AudioDir(str(tmp_path / "train"), 8000, 1, 500, holdout=2)
    assert len(ds.held_out_names) == 2 and len(ds.files) == 3
    val = ds.held_out(str(tmp_path / "val"))
    assert {_source(val, n) for n in range(10)} == {0.75}
    assert {levels[_source(ds, n)] for n in range(30)}.isdisjoint(ds.held_out_names)
    with pytest.raises(DataError, match=r"not found: .*nowhere"):
        ds.held_out(str(tmp_path / "nowhere"))
