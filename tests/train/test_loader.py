"""The training loop's loader (train/loop.py: micro_batches): workers for every source, iterable
sources, a DataLoader worker that dies."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf
from torch.utils.data import Dataset

from audioae.data import AudioDir, DataError, SyntheticMusic
from audioae.train.loop import micro_batches

CPU = SimpleNamespace(process_index=0, num_processes=1, device=torch.device("cpu"))


def cfg(workers: int, batch_size: int = 2):
    return OmegaConf.create(
        {"trainer": {"batch_size": batch_size, "num_workers": workers, "seed": 0}}
    )


def take(dataset, workers: int, count: int, start: int = 0) -> list[torch.Tensor]:
    batches = micro_batches(dataset, cfg(workers), start, CPU)
    return [next(batches) for _ in range(count)]


def audio_dir(folder: Path) -> AudioDir:
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(folder / f"{i}.wav", 0.3 * rng.standard_normal((8000, 2)), 16000)
    return AudioDir(str(folder), 16000, 2, 1024, holdout=0)


@pytest.mark.parametrize("source", ["synthetic", "audio_dir"])
def test_workers_give_the_same_batches_as_the_main_process(tmp_path, source):
    data = SyntheticMusic(16000, 2, 1024) if source == "synthetic" else audio_dir(tmp_path)
    alone, workers = take(data, 0, 3, start=4), take(data, 2, 3, start=4)
    for a, b in zip(alone, workers):
        assert a.shape == (2, 2, 1024)
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(alone[0][0], data[8], rtol=0, atol=0)  # draws 8, 9 first


class Draws(Dataset):
    """Item n is tensor([n]); the first worker to fetch draw `die_at` dies (once)."""

    def __init__(self, marker: Path, die_at: int) -> None:
        self.marker, self.die_at = marker, die_at

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, n: int) -> torch.Tensor:
        if n == self.die_at and not self.marker.exists():
            self.marker.touch()
            os._exit(1)  # as the out-of-memory killer would
        return torch.tensor([float(n)])


def test_a_dead_worker_is_one_warning_and_the_batches_go_on(tmp_path, caplog):
    batches = take(Draws(tmp_path / "died", die_at=7), 2, 6)
    assert [b.flatten().tolist() for b in batches] == [[2 * i, 2 * i + 1] for i in range(6)]
    (warning,) = [r for r in caplog.records if "exited unexpectedly" in r.message]
    assert "DataLoader worker (pid" in warning.message
    assert "restarting the data loader at micro-batch" in warning.message


class Broken(Dataset):
    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, n: int) -> torch.Tensor:
        raise DataError(f"draw {n}: nothing usable")


def test_a_data_error_in_a_worker_is_one_line():
    with pytest.raises(DataError) as caught:
        take(Broken(), 1, 1)
    assert str(caught.value) == "draw 0: nothing usable"
