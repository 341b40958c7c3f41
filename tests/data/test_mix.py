"""Weighted mixtures of sources (audioae/data/mix.py, conf/data/mix.yaml)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Dataset, IterableDataset

from audioae.data.audio_dir import DataError
from audioae.data.mix import IterableMix, Mix, mix, realised_shares, uniforms
from audioae.data.synthetic import SyntheticMusic
from conftest import compose_train


class Constant(Dataset):
    """Item n: a (1, 4) tensor holding (source id, n)."""

    def __init__(self, ident: int, held: list[str] | None = None) -> None:
        self.ident, self.held_out_names, self.held = ident, held or [], False

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, n: int) -> torch.Tensor:
        return torch.tensor([[self.ident, n, 0.0, 0.0]])

    def held_out(self, path=None):
        other = Constant(self.ident + 100)
        other.held = True
        return other


class Stream(IterableDataset):
    """An iterable source: (1, 4) tensors holding (source id, its own counter)."""

    def __init__(self, ident: int) -> None:
        self.ident, self.held_out_names = ident, ["s.tar/x.flac"]

    def __iter__(self):
        i = 0
        while True:
            yield torch.tensor([[self.ident, i, 0.0, 0.0]])
            i += 1

    def held_out(self, path=None):
        return Stream(self.ident + 100)


WEIGHTS = {"music": 0.5, "speech": 0.3, "effects": 0.2}


def _sources():
    return {"music": Constant(0, ["a.wav"]), "speech": Constant(1), "effects": Constant(2)}


def test_realised_proportions_within_3_points_and_deterministic_per_draw():
    ds = mix(_sources(), WEIGHTS, seed=4)
    assert isinstance(ds, Mix)
    items = [ds[n] for n in range(2000)]
    ids = np.array([int(x[0, 0]) for x in items])
    for k, (name, w) in enumerate(WEIGHTS.items()):
        assert abs((ids == k).mean() - w) < 0.03, name
    # each source's item is its own draw n; the mix's shares from the draw numbers alone
    assert [int(x[0, 1]) for x in items] == list(range(2000))
    shares = ds.proportions(0, 2000)
    assert shares == {name: float((ids == k).mean()) for k, name in enumerate(WEIGHTS)}
    assert realised_shares(ds, 0, 2000) == {f"data/mix/{k}": v for k, v in shares.items()}
    assert realised_shares(Constant(0), 0, 10) == {}
    again = mix(_sources(), WEIGHTS, seed=4)
    assert all(torch.equal(ds[n], again[n]) for n in (1999, 7, 0))
    other = mix(_sources(), WEIGHTS, seed=5)
    assert [int(other[n][0, 0]) for n in range(50)] != ids[:50].tolist()
    # unnormalised weights are normalised
    assert mix(_sources(), {"music": 5, "speech": 3, "effects": 2}, 4).weights == pytest.approx(
        WEIGHTS
    )


def test_uniforms_are_uniform():
    u = uniforms(0, np.arange(100_000))
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005 and np.histogram(u, 10, (0, 1))[0].min() > 9500


def test_held_out_is_the_mix_of_held_out_parts():
    ds = mix(_sources(), WEIGHTS, seed=4)
    held = ds.held_out()
    assert isinstance(held, Mix) and all(s.held for s in held.sources)
    assert held.weights == ds.weights
    assert ds.held_out_names == ["music/a.wav"]
    with pytest.raises(DataError, match="val_path"):
        ds.held_out("/some/folder")


def test_bad_weights_are_errors_naming_the_sources():
    with pytest.raises(DataError, match=r"no weight for \['effects'\]"):
        mix(_sources(), {"music": 1, "speech": 1})
    with pytest.raises(DataError, match=r"no source for \['noise'\]"):
        mix(_sources(), {**WEIGHTS, "noise": 1})
    with pytest.raises(DataError, match="weights >= 0"):
        mix(_sources(), {**WEIGHTS, "music": -1})
    with pytest.raises(DataError, match="no sources"):
        mix({}, {})


def test_an_iterable_source_makes_the_mix_iterable():
    sources = {"music": Constant(0), "stream": Stream(1)}
    ds = mix(sources, {"music": 0.7, "stream": 0.3}, seed=1)
    assert isinstance(ds, IterableMix)
    items = [x for _, x in zip(range(2000), ds, strict=False)]
    ids = np.array([int(x[0, 0]) for x in items])
    assert abs((ids == 1).mean() - 0.3) < 0.03
    # the stream's items come in its own order; the map source's by the item's number
    assert [int(x[0, 1]) for x in items if x[0, 0] == 1] == list(range((ids == 1).sum()))
    assert [int(x[0, 1]) for x in items if x[0, 0] == 0] == np.flatnonzero(ids == 0).tolist()
    again = [x for _, x in zip(range(2000), ds, strict=False)]
    assert all(torch.equal(a, b) for a, b in zip(items, again, strict=True))
    held = ds.held_out()
    assert isinstance(held, IterableMix) and [s.ident for s in held.sources] == [100, 101]
    assert ds.held_out_names == ["stream/s.tar/x.flac"]


def test_iterable_mix_in_two_workers_gives_distinct_numbers():
    sources = {"a": Constant(0), "b": Stream(1)}
    ds = mix(sources, {"a": 0.5, "b": 0.5}, seed=2)
    loader = DataLoader(ds, batch_size=4, num_workers=2)
    batches = [b for _, b in zip(range(10), loader, strict=False)]
    numbers = [int(x[0, 1]) for b in batches for x in b if x[0, 0] == 0]
    assert len(numbers) == len(set(numbers))  # no draw of the map source twice


def test_the_config_shape_composes_and_builds(tmp_path):
    root = tmp_path / "speech"
    root.mkdir()
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, (8000, 1)).astype(np.float32)
    for i in range(3):
        sf.write(root / f"{i}.wav", noise, 16000)
    cfg = compose_train(
        "experiment=smoke",
        "data=mix",
        "+data@data.sources.music=synthetic",
        "+data@data.sources.speech=audio_dir",
        f"data.sources.speech.path={root}",
        "data.sources.speech.cache_manifest=false",
        "data.weights={music:0.6,speech:0.4}",
    )
    ds = instantiate(cfg.data)
    assert isinstance(ds, Mix) and ds.weights == {"music": 0.6, "speech": 0.4}
    assert isinstance(ds.sources[0], SyntheticMusic)
    item = ds[3]
    assert item.shape == (cfg.in_channels, cfg.sample_size)
