"""What stable-audio-tools configs say about augmentation and data: model configs (its
PhaseFlipper, always on) and dataset configs (folders, volume_norm, random_crop)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra.utils import instantiate
from test_convert_cli import cli

from audioae.convert import SATConversionWarning, config_to_sat, convert, load_json
from audioae.convert.sat_dataset import dataset_overrides
from audioae.data.augment import Augment
from audioae.errors import ConfigError
from conftest import compose_train

CONFIGS = Path(__file__).parent / "fixtures" / "configs"
MODELS = ["dac_2048_32_vae", "encodec_musicgen_rvq", "stable_audio_1_0_vae", "stable_audio_2_0_vae"]


def _convert(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SATConversionWarning)
        return convert(load_json(CONFIGS / f"{name}.json"))


@pytest.mark.parametrize("name", MODELS)
def test_model_configs_select_the_phase_flipper(name):
    conversion = _convert(name)
    assert "augment=sat" in conversion.overrides
    aug = instantiate(conversion.cfg.augment)
    assert isinstance(aug, Augment) and aug.polarity_p == 0.5 and aug.active
    assert aug.silence_p == 1e-3  # 0.0.20's training step zeroes one crop in a thousand
    assert aug.gain_db is None and aug.loudness_lufs is None
    assert aug.sample_rate == conversion.cfg.sample_rate


SAT_OBJECTIVE = (
    "bottleneck.init_std=null",
    "loss.terms.mel=null",
    "loss.weights.spec.mel=0",
    "loss.terms.spectral.form=sat",
    "trainer.data_init=null",
)


def test_back_conversion_warns_when_the_augmentation_differs():
    with warnings.catch_warnings():
        warnings.simplefilter("error", SATConversionWarning)
        # nothing lost (audioae's defaults would be: SAT starts the VAE at the encoder's own
        # initialisation and PyTorch's, has no mel term and its own STFT loss)
        config_to_sat(compose_train("experiment=smoke", "augment=sat", *SAT_OBJECTIVE))
    for override, key in (
        ("augment=none", "augment.polarity_p"),
        ("augment.gain_db=[-3,3]", "augment.gain_db"),
    ):
        with pytest.warns(SATConversionWarning, match=key.replace(".", r"\.")):
            config_to_sat(
                compose_train(
                    "experiment=smoke", "augment=sat", "bottleneck.init_std=null", override
                )
            )


def _folder(root: Path, files: int) -> Path:
    root.mkdir(parents=True)
    for i in range(files):
        sf.write(root / f"{i}.wav", np.zeros((100, 1), np.float32), 8000)
    return root


def test_one_folder_is_audio_dir_and_volume_norm_is_loudness(tmp_path):
    config = {
        "dataset_type": "audio_dir",
        "datasets": [{"id": "music", "path": "/data/music"}],
        "random_crop": True,
        "drop_last": True,
    }
    assert dataset_overrides(config) == ["data=audio_dir", "data.path=/data/music"]
    shards = {
        "dataset_type": "wds",
        "volume_norm": True,
        "volume_norm_param": [-20, 5],
        "epoch_steps": 2000,
    }
    with pytest.warns(SATConversionWarning, match="shard list is not converted"):
        overrides = dataset_overrides(shards)
    assert overrides == [
        "augment.loudness_lufs=-20.0",
        "augment.loudness_range=5.0",
        "augment.max_peak=0.95",
    ]
    cfg = compose_train("experiment=smoke", "augment=sat", *overrides)
    aug = instantiate(cfg.augment)
    assert (aug.loudness_lufs, aug.loudness_range, aug.max_peak, aug.polarity_p) == (
        -20.0,
        5.0,
        0.95,
        0.5,
    )
    with pytest.warns(SATConversionWarning):
        assert dataset_overrides({"dataset_type": "s3", "volume_norm": False}) == []


def test_several_folders_are_a_mix_weighted_by_file_count(tmp_path):
    a, b = _folder(tmp_path / "a", 3), _folder(tmp_path / "b", 1)
    config = {
        "dataset_type": "audio_dir",
        "datasets": [{"id": "music", "path": str(a)}, {"id": "speech", "path": str(b)}],
    }
    overrides = dataset_overrides(config)
    assert overrides == [
        "data=mix",
        "+data@data.sources.music=audio_dir",
        f"data.sources.music.path={a}",
        "+data@data.sources.speech=audio_dir",
        f"data.sources.speech.path={b}",
        "data.weights={music:3,speech:1}",
    ]
    cfg = compose_train("experiment=smoke", *overrides, "data.sources.music.holdout=0")
    assert cfg.data.sources.speech.path == str(b) and cfg.data.weights.music == 3


@pytest.mark.parametrize(
    "change, message",
    [
        ({"random_crop": False}, "random_crop: false"),
        ({"dataset_type": "pre_encoded"}, "dataset_type: 'pre_encoded' is not supported"),
        ({"datasets": [{"id": "x", "path": "/p", "custom_metadata_module": "m.py"}]}, "custom"),
        ({"datasets": [{"id": "a b", "path": "/p"}]}, r"datasets\[0\]\.id"),
        ({"shuffle_buffer": 3}, "shuffle_buffer: unknown key"),
    ],
)
def test_unsupported_dataset_keys_are_errors(change, message):
    config = {"dataset_type": "audio_dir", "datasets": [{"id": "m", "path": "/p"}], **change}
    with pytest.raises(ConfigError, match=message):
        dataset_overrides(config, "d.json")


def test_cli_appends_the_dataset_overrides(tmp_path, capsys):
    dataset = tmp_path / "dataset.json"
    folder = {"dataset_type": "audio_dir", "datasets": [{"id": "m", "path": "/x"}]}
    dataset.write_text(json.dumps(folder))
    model = str(CONFIGS / "dac_2048_32_vae.json")
    status, out, _ = cli(model, "--dataset", str(dataset), capsys=capsys)
    words = out.split()
    assert status == 0 and words[-2:] == ["data=audio_dir", "data.path=/x"]
    assert "augment=sat" in words


def test_silence_zeroes_crops_at_its_rate_and_leaves_the_other_draws_alone():
    """augment.silence_p: a crop zeroed whole with that probability (0.0.20's silence -> silence
    examples); the flips of every draw are those of the same seed without it."""
    crop = torch.linspace(-0.5, 0.5, 64).repeat(2, 1)
    plain = Augment(44100, seed=3, polarity_p=0.5)
    silent = Augment(44100, seed=3, polarity_p=0.5, silence_p=0.25)
    zeroed = 0
    for n in range(400):
        a, b = plain(crop, plain.rng(n)), silent(crop, silent.rng(n))
        if b.abs().max() == 0:
            zeroed += 1
        else:
            assert torch.equal(a, b)
    assert 70 <= zeroed <= 130  # 100 expected; binomial sd 8.7
    with pytest.raises(ConfigError, match=r"augment\.silence_p=2"):
        Augment(44100, silence_p=2)
    with pytest.warns(SATConversionWarning, match=r"augment\.silence_p"):
        config_to_sat(
            compose_train("experiment=smoke", "augment=sat", *SAT_OBJECTIVE, "augment.silence_p=0")
        )
