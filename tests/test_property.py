"""Property: for random configs and random audio folders, training either starts or stops
with one clear line (an AudioAEError), never another exception."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audioae.errors import AudioAEError
from audioae.train.loop import train
from conftest import compose_train

pytestmark = pytest.mark.slow

FILES = st.lists(
    st.tuples(
        st.sampled_from(["wav", "flac", "garbage", "empty", "nan"]),
        st.integers(1, 3000),  # frames
        st.sampled_from([8000, 16000, 22050]),
        st.integers(1, 3),  # channels
    ),
    max_size=4,
)


def write_files(folder: Path, files) -> None:
    rng = np.random.default_rng(0)
    for i, (kind, frames, rate, channels) in enumerate(files):
        path = folder / f"f{i}.{'wav' if kind in ('garbage', 'empty', 'nan') else kind}"
        if kind == "garbage":
            path.write_bytes(rng.bytes(frames))
        elif kind == "empty":
            path.write_bytes(b"")
        else:
            audio = rng.uniform(-0.5, 0.5, (frames, channels)).astype(np.float32)
            if kind == "nan":
                audio[::7] = np.nan
            sf.write(path, audio, rate, subtype="FLOAT" if kind == "nan" else "PCM_16")


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    bottleneck=st.sampled_from(["vae", "tanh"]),
    strides=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    latent_dim=st.integers(0, 6),
    sample_size=st.integers(16, 1024),
    channels=st.integers(1, 2),
    use_files=st.booleans(),
    files=FILES,
)
def test_training_starts_or_fails_with_one_line(
    bottleneck, strides, latent_dim, sample_size, channels, use_files, files
):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = []
        if use_files:
            (tmp / "audio").mkdir()
            write_files(tmp / "audio", files)
            data = ["data=audio_dir", f"data.path={tmp / 'audio'}"]
        cfg = compose_train(
            "experiment=smoke",
            f"bottleneck={bottleneck}",
            f"latent_dim={latent_dim}",
            f"encoder.strides=[{','.join(map(str, strides))}]",
            f"encoder.c_mults=[{','.join('1' * len(strides))}]",
            f"sample_size={sample_size}",
            f"io_channels={channels}",
            "trainer.max_steps=1",
            "trainer.demo_every=0",
            *data,
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ckpt = train(cfg, tmp / "run")
        except AudioAEError as e:
            message = str(e)
            assert message and "\n" not in message, message
        else:
            assert ckpt is not None and (ckpt / "model.safetensors").exists()
