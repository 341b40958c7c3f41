"""audioae.data.PreEncoded on a folder laid out as stable-audio-tools' pre_encode.py writes it:
crops inside the unpadded frames, masks, length filters, metadata; data=pre_encoded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from audioae import schema
from audioae.data import DataError, PreEncoded
from audioae.errors import ConfigError
from conftest import compose_train
from data.sat_pre_encoded import write_sat_folder

RATIO, FRAMES, RATE = 2048, 64, 44100


@pytest.fixture
def sat_folder(tmp_path):
    rng = np.random.default_rng(0)
    latents = [rng.standard_normal((4, FRAMES)).astype(np.float32) for _ in range(3)]
    # a file of exactly the sample size (3 s), a short one (1 s: 21 frames), a long one (10 s)
    lengths = [FRAMES * RATIO, 20 * RATIO + 5, 10 * RATE]
    paths = write_sat_folder(tmp_path / "sat", latents, lengths, FRAMES * RATIO, RATE)
    (tmp_path / "sat" / "0" / ".tmp-123-0000000000001.npy").write_bytes(b"half")  # never read
    return tmp_path / "sat", latents, paths


def test_reads_sat_items_with_their_metadata(sat_folder):
    folder, latents, paths = sat_folder
    ds = PreEncoded(str(folder))
    assert len(ds) == 3 and ds.files == [str(p) for p in paths]
    x, info = ds[1]
    np.testing.assert_array_equal(x.numpy(), latents[1])
    assert info["padding_mask"].tolist() == [True] * 21 + [False] * (FRAMES - 21)  # nearest
    assert info["path"] == "/data/audio/file1.wav" and info["seconds_total"] == 1
    assert info["latent_filename"] == str(paths[1]) and info["latent_crop_start"] == 0


def test_random_crops_stay_inside_the_unpadded_frames(sat_folder):
    folder, latents, _ = sat_folder
    ds = PreEncoded(str(folder), latent_crop_length=16)
    torch.manual_seed(0)
    starts = {0: set(), 1: set()}
    for _ in range(60):
        for k in (0, 1):
            x, info = ds[k]
            s = info["latent_crop_start"]
            starts[k].add(s)
            assert x.shape == (4, 16) and info["latent_crop_length"] == 16
            np.testing.assert_array_equal(x.numpy(), latents[k][:, s : s + 16])
            assert info["padding_mask"].all()
    assert starts[1] == set(range(0, 21 - 16 + 1))  # every start that keeps 16 valid frames
    assert max(starts[0]) <= FRAMES - 16 and len(starts[0]) > 20


def test_short_items_are_padded_and_masked(sat_folder):
    folder, latents, _ = sat_folder
    x, info = PreEncoded(str(folder), latent_crop_length=32)[1]  # 21 valid frames of 64
    assert info["latent_crop_start"] == 0
    np.testing.assert_array_equal(x.numpy(), latents[1][:, :32])
    assert info["padding_mask"].tolist() == [True] * 21 + [False] * 11
    x, info = PreEncoded(str(folder), latent_crop_length=100)[0]  # longer than the item
    assert x.shape == (4, 100) and torch.equal(x[:, FRAMES:], torch.zeros(4, 100 - FRAMES))
    assert info["padding_mask"].tolist() == [True] * FRAMES + [False] * (100 - FRAMES)


def test_without_random_crop_the_crop_starts_at_zero(sat_folder):
    folder, _, _ = sat_folder
    ds = PreEncoded(str(folder), latent_crop_length=8, random_crop=False)
    assert all(ds[k][1]["latent_crop_start"] == 0 for k in range(3))


def test_length_filters(sat_folder):
    folder, _, paths = sat_folder  # seconds_total 3, 1, 10
    assert PreEncoded(str(folder), min_length_sec=2).files == [str(paths[0]), str(paths[2])]
    assert PreEncoded(str(folder), max_length_sec=5).files == [str(paths[0]), str(paths[1])]
    with pytest.raises(DataError, match="min_length_sec=20"):
        PreEncoded(str(folder), min_length_sec=20)


def test_batches_collate(sat_folder):
    folder, _, _ = sat_folder
    x, info = next(iter(DataLoader(PreEncoded(str(folder), latent_crop_length=16), batch_size=3)))
    assert x.shape == (3, 4, 16) and info["padding_mask"].shape == (3, 16)


def test_errors_name_the_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        PreEncoded(str(tmp_path / "missing"))
    with pytest.raises(DataError, match=r"no \.npy latents"):
        PreEncoded(str(tmp_path))


def test_data_option_builds_it_and_training_refuses_it(sat_folder):
    folder, _, _ = sat_folder
    cfg = compose_train("experiment=smoke", "data=pre_encoded", f"data.path={folder}")
    ds = instantiate(cfg.data)
    assert isinstance(ds, PreEncoded) and len(ds) == 3
    with pytest.raises(ConfigError, match="data=pre_encoded holds latents"):
        schema.check_values(cfg)
