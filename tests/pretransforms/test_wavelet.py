"""Wavelet pretransform: perfect reconstruction, PyWavelets' filters, reference layout."""

from __future__ import annotations

import pytest
import torch

from audioae.build import build_autoencoder
from audioae.errors import ConfigError
from audioae.pretransforms.wavelet import WAVELETS, Wavelet, filter_bank
from conftest import compose_train


def exact(module: Wavelet) -> Wavelet:
    """The module in float64 with float64 filters (the buffers are float32 as in the reference)."""
    module = module.double()
    bank, c = filter_bank(module.wavelet), module.channels
    pairs = ((module.encoder.kernel, bank[:2].flip(-1)), (module.decoder.kernel, bank[2:]))
    for kernel, filters in pairs:
        kernel.zero_()
        for i in range(2):
            for j in range(c):
                kernel[i * c + j, j] = filters[i]
    return module


@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("levels", [1, 3])
def test_perfect_reconstruction_at_any_length(wavelet, levels):
    ratio = 2**levels
    module = exact(Wavelet(2, levels, wavelet))
    for length in (ratio, 3 * ratio, 1000 * ratio + ratio):  # shorter than the filters too
        x = torch.randn(2, 2, length, dtype=torch.float64)
        z = module.encode(x)
        assert z.shape == (2, 2 * ratio, length // ratio)
        # limited by the 17 digits of the published coefficients
        torch.testing.assert_close(module.decode(z), x, rtol=0, atol=1e-10)


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_float32_round_trip(wavelet):
    x = torch.randn(3, 2, 8192)
    module = Wavelet(2, 4, wavelet)
    err = (module.decode(module.encode(x)) - x).abs().max()
    assert err < 1e-5 * x.abs().max()


def test_filters_match_pywavelets_tables():
    # rows 1 and 3 (dec_hi, rec_hi) of PyWavelets' bior2.2 and bior6.8, leading zero dropped
    bank = filter_bank("bior2.2").tolist()
    s, r = 0.17677669529663689, 0.35355339059327379
    assert bank[1] == pytest.approx([r, -2 * r, r, 0, 0], abs=1e-16)
    assert bank[3] == pytest.approx([s, r, -1.0606601717798214, r, s], abs=1e-16)
    hi = filter_bank("bior6.8")[1].tolist()
    expected = [0.0, 0.0, 0.014426282505624435, -0.014467504896790148, -0.078722001062628819]
    expected += [0.040367979030339923, 0.41784910915027457, -0.75890772945365415]
    assert hi[:8] == pytest.approx(expected, abs=1e-16)
    assert all(filter_bank(w).shape[-1] % 2 == 1 for w in WAVELETS)


def test_reference_state_dict_layout():
    module = Wavelet(2, 3, "bior4.4")
    state = module.state_dict()
    assert set(state) == {"encoder.kernel", "decoder.kernel"}
    kernel = state["encoder.kernel"]
    assert kernel.shape == (4, 2, 9) and kernel.dtype == torch.float32


def test_low_band_carries_a_low_tone():
    t = torch.arange(4096) / 16000
    x = torch.sin(2 * torch.pi * 100 * t).expand(1, 1, -1).contiguous()
    z = Wavelet(1, 3, "bior4.4").encode(x)
    energy = z.pow(2).sum(-1)[0]
    assert energy[0] > 0.99 * energy.sum()


def test_bad_arguments():
    with pytest.raises(ConfigError, match=r"bior4\.4"):
        Wavelet(2, 2, "haar")
    with pytest.raises(ValueError, match="multiple of 8"):
        Wavelet(2, 3).encode(torch.randn(1, 2, 20))


def test_model_with_wavelet_pretransform():
    cfg = compose_train("experiment=smoke", "pretransform=wavelet", "pretransform.levels=2")
    model = build_autoencoder(cfg)
    assert model.downsampling_ratio == 8 * 4
    assert model.encoder.in_channels == 2 * 4
    assert not any(p.requires_grad for p in model.pretransform.parameters())
    x = torch.randn(2, 2, cfg.sample_size)
    y, result = model(x)
    assert y.shape == x.shape
    assert result.latents.shape == (2, cfg.latent_dim, cfg.sample_size // 32)
