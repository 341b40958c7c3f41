"""Augmentation of training crops (audioae/data/augment.py, conf/augment/)."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import Dataset, IterableDataset

from audioae.data.augment import Augment, Augmented, AugmentedIterable, augmented, loudness
from audioae.errors import ConfigError
from conftest import compose_train

SR = 16000


def _measure(audio: torch.Tensor) -> float:
    """The reference: pyloudnorm's BS.1770 meter, 400 ms blocks."""
    return pyloudnorm.Meter(SR).integrated_loudness(audio.numpy().T.astype(np.float64))


def _signals() -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    return {
        "white noise": rng.uniform(-0.5, 0.5, (2, 2 * SR)),
        "quiet noise": rng.normal(0, 0.003, (2, 2 * SR)),
        "tone 440 Hz": np.stack([tone, 0.5 * tone]),
        "tone 60 Hz, mono": 0.8 * np.sin(2 * np.pi * 60 * t)[None],
        "two tones": np.stack([tone, 0.2 * np.sin(2 * np.pi * 3000 * t)]),
    }


class Items(Dataset):
    def __init__(self, signal: torch.Tensor) -> None:
        self.signal = signal
        self.held_out_names = ["x.wav"]

    def __len__(self) -> int:
        return 10**6

    def __getitem__(self, n: int) -> torch.Tensor:
        return self.signal * (1 + n % 3) / 3

    def held_out(self, path=None):
        return "held"


@pytest.mark.parametrize("name", sorted(_signals()))
def test_loudness_normalisation_hits_its_target(name):
    audio = torch.from_numpy(_signals()[name]).float()
    aug = Augment(SR, seed=1, loudness_lufs=-20.0, loudness_range=5.0, max_gain_db=60.0)
    targets = []
    for n in range(6):
        rng = aug.rng(n)
        out = aug(audio, rng)
        # the target this draw chose: the same generator, drawn in the same order
        rng = aug.rng(n)
        rng.random(4)
        target = -20.0 + 5.0 * rng.uniform(-1.0, 1.0)
        targets.append(target)
        assert out.shape == audio.shape and out.dtype == torch.float32
        assert abs(_measure(out) - target) < 0.5, (name, n, _measure(out), target)
        assert out.abs().max() <= 1.0
    assert max(targets) - min(targets) > 1.0  # the range is used
    assert all(-25.0 <= t <= -15.0 for t in targets)


def test_loudness_guards_silence_and_clipping():
    aug = Augment(SR, loudness_lufs=-10.0)
    silence = torch.zeros(2, SR)
    assert torch.equal(aug(silence, aug.rng(0)), silence)  # undefined loudness: unchanged
    # 1e-4 noise is below BS.1770's -70 LUFS gate: undefined loudness, left as it is
    faint = torch.from_numpy(np.random.default_rng(1).normal(0, 1e-4, (1, SR))).float()
    assert torch.equal(aug(faint, aug.rng(0)), faint)
    # 1e-3 noise (about -58 LUFS) would need +48 dB: the boost stops at max_gain_db = 30
    faint = faint * 10
    assert -65 < _measure(faint) < -50
    assert abs(_measure(aug(faint, aug.rng(0))) - (_measure(faint) + 30.0)) < 0.1
    # a crest-heavy click train at -10 LUFS would peak far above 1: scaled to peak 1 instead
    clicks = torch.zeros(1, SR)
    clicks[0, ::4000] = 0.05
    out = aug(clicks, aug.rng(0))
    assert abs(out.abs().max().item() - 1.0) < 1e-6 and _measure(out) < -10.0
    # crops shorter than a 400 ms block are measured as one block
    short = torch.from_numpy(_signals()["white noise"][:, :2048]).float()
    assert np.isfinite(loudness(short.numpy(), SR))
    assert abs(loudness(aug(short, aug.rng(0)).numpy(), SR) + 10.0) < 0.5


def test_polarity_flip_frequency_gain_range_and_determinism():
    signal = torch.from_numpy(_signals()["two tones"][:, :256]).float()
    aug = Augment(SR, seed=7, polarity_p=0.5, gain_db=[-6.0, 0.0])
    ds = augmented(Items(signal), aug)
    assert isinstance(ds, Augmented)
    flips, ratios = 0, []
    for n in range(600):
        item, base = ds[n], Items(signal)[n]
        ratio = (item[0] @ base[0] / (base[0] @ base[0])).item()
        flips += ratio < 0
        ratios.append(abs(ratio))
    assert abs(flips / 600 - 0.5) < 0.06
    db = 20 * np.log10(ratios)
    assert db.min() >= -6.0 - 1e-4 and db.max() <= 1e-4 and db.max() - db.min() > 5.0
    again = augmented(Items(signal), Augment(SR, seed=7, polarity_p=0.5, gain_db=[-6.0, 0.0]))
    for n in (5, 599, 0):
        assert torch.equal(ds[n], again[n])
    other_seed = augmented(Items(signal), Augment(SR, seed=8, polarity_p=0.5, gain_db=[-6, 0]))
    assert any(not torch.equal(ds[n], other_seed[n]) for n in range(5))
    # held-out data is the dataset's own, never augmented
    assert ds.held_out() == "held" and ds.held_out_names == ["x.wav"]


def test_channel_swap_and_mono():
    signal = torch.from_numpy(_signals()["two tones"][:, :256]).float()
    swap = Augment(SR, channel_swap_p=1.0)
    assert torch.equal(swap(signal, swap.rng(0)), signal.flip(0))
    mono = Augment(SR, mono_p=1.0)
    out = mono(signal, mono.rng(0))
    assert torch.allclose(out[0], signal.mean(0)) and torch.equal(out[0], out[1])
    half = Augment(SR, seed=2, channel_swap_p=0.3)
    swapped = sum(torch.equal(half(signal, half.rng(n)), signal.flip(0)) for n in range(1000))
    assert abs(swapped / 1000 - 0.3) < 0.05
    single = torch.randn(1, 100)
    assert torch.equal(swap(single, swap.rng(0)), single)  # one channel: nothing to swap


def test_off_is_no_wrapper_and_bad_values_name_the_key():
    items = Items(torch.ones(1, 10))
    assert augmented(items, None) is items
    assert augmented(items, Augment(SR)) is items
    with pytest.raises(ConfigError, match=r"augment\.polarity_p=1\.5"):
        Augment(SR, polarity_p=1.5)
    with pytest.raises(ConfigError, match=r"augment\.gain_db"):
        Augment(SR, gain_db=[3.0, -3.0])


def test_iterable_datasets_are_augmented_per_item():
    class Stream(IterableDataset):
        def __iter__(self):
            for _ in range(50):
                yield torch.ones(1, 8)

    aug = Augment(SR, seed=3, polarity_p=0.5)
    ds = augmented(Stream(), aug)
    assert isinstance(ds, AugmentedIterable)
    signs = [int(x[0, 0]) for x in ds]
    assert signs == [int(x[0, 0]) for x in ds] and 10 < signs.count(-1) < 40


@pytest.mark.parametrize("name", ["none", "sat"])
def test_presets_compose_and_instantiate(name):
    cfg = compose_train("experiment=smoke", f"augment={name}")
    aug = instantiate(cfg.augment)
    assert isinstance(aug, Augment) and aug.sample_rate == cfg.sample_rate
    assert aug.active == (name == "sat")
    if name == "sat":  # stable-audio-tools' PhaseFlipper, and nothing else
        assert aug.polarity_p == 0.5 and aug.gain_db is None and aug.loudness_lufs is None
        assert aug.mono_p == aug.channel_swap_p == 0.0
