"""PQMF pretransform: near-perfect reconstruction (measured), band split, shapes."""

from __future__ import annotations

import pytest
import torch

from audioae.build import build_autoencoder
from audioae.pretransforms.pqmf import PQMF
from conftest import compose_train


def snr_db(x, y) -> float:
    return 10 * torch.log10(x.pow(2).mean() / (y - x).pow(2).mean()).item()


@pytest.mark.parametrize("bands", [2, 4, 16])
def test_near_perfect_reconstruction(bands):
    # documented: about 58 dB SNR on white noise at 100 dB attenuation, whatever the band count
    torch.manual_seed(0)
    module = PQMF(2, bands).double()
    x = torch.randn(2, 2, bands * 512, dtype=torch.float64)
    z = module.encode(x)
    assert z.shape == (2, 2 * bands, 512)
    y = module.decode(z)
    assert y.shape == x.shape
    assert snr_db(x, y) > 56
    assert (y - x).abs().max() < 1e-2  # unit-variance input


def test_error_is_uniform_in_time():
    # circular extension: the edges are no worse than the middle
    module = PQMF(1, 4).double()
    x = torch.randn(1, 1, 4096, dtype=torch.float64)
    err = (module.decode(module.encode(x)) - x).abs()
    assert err[..., :64].max() < 3 * err[..., 1024:3072].max()


def test_a_tone_lands_in_its_band():
    bands, rate = 8, 16000
    t = torch.arange(8192) / rate
    freq = (5 + 0.5) * rate / (2 * bands)  # the middle of band 5
    x = torch.sin(2 * torch.pi * freq * t).view(1, 1, -1)
    energy = PQMF(1, bands).encode(x).pow(2).sum(-1)[0]
    assert energy.argmax() == 5 and energy[5] > 0.99 * energy.sum()


def test_model_with_pqmf_pretransform():
    cfg = compose_train("experiment=smoke", "pretransform=pqmf", "pretransform.num_bands=4")
    model = build_autoencoder(cfg)
    assert model.downsampling_ratio == 32 and model.encoder.in_channels == 8
    assert model.state_dict().keys().isdisjoint({"pretransform.analysis", "pretransform.synthesis"})
    x = torch.randn(1, 2, cfg.sample_size)
    assert model(x)[0].shape == x.shape
