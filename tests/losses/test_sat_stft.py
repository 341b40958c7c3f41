"""MultiResolutionSTFT(form="sat"): stable-audio-tools 0.0.20's STFT loss, equal to its own code
(fixtures/sat_stft.safetensors, written by fixtures/make_sat_stft.py in its venv)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from audioae.losses.sat_stft import KWeighting, tight_magnitude, tight_window
from audioae.losses.spectral import MultiResolutionSTFT

FIXTURE = load_file(str(Path(__file__).parent / "fixtures" / "sat_stft.safetensors"))
ARGS = dict(fft_sizes=[512, 256, 128, 64, 32], hop_sizes=[128, 64, 32, 16, 8],
            win_lengths=[512, 256, 128, 64, 32])  # fmt: skip


@pytest.mark.parametrize("weighting", [False, True])
@pytest.mark.parametrize("channels", [2, 1])
def test_equals_stable_audio_tools(weighting, channels):
    """Loss and gradient on stereo (with a dual-mono and a quiet crop) and mono signals, with
    and without K-weighting, as 0.0.20's training wrapper computes them."""
    key = f"{'k' if weighting else 'flat'}.{channels}"
    loss = MultiResolutionSTFT(44100, channels, perceptual_weighting=weighting, form="sat", **ARGS)
    recon = FIXTURE["recon"][:, :channels].clone().requires_grad_(True)
    value = loss(recon, FIXTURE["real"][:, :channels])["spec/mrstft"]
    value.backward()
    assert float(value.detach()) == pytest.approx(float(FIXTURE[f"{key}.loss"]), rel=1e-5)
    grad = FIXTURE[f"{key}.grad"]
    assert float((recon.grad - grad).norm() / grad.norm()) < 1e-4


def test_tight_stft_keeps_the_energy():
    """The window's squares overlap-add to 1 and interior bins carry sqrt(2), so the one-sided
    magnitudes of a periodic signal hold its energy: sum |X|^2 = sum x^2 over whole frames."""
    n_fft, hop = 64, 16
    w = tight_window(n_fft, hop)
    squares = (w**2).reshape(4, hop).sum(0)  # four hops of the window overlap at each sample
    assert torch.allclose(squares, torch.ones(hop), atol=1e-6)
    x = torch.randn(1, 1024, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    periodic = torch.cat([x, x], dim=-1)  # frames over the middle see every sample 4 times
    mags = tight_magnitude(periodic, n_fft, hop, eps=0.0)
    frames = mags.shape[-1]
    middle = mags[..., 4 : 4 + 1024 // hop]  # 64 frames: each sample of one period, 4 times
    assert frames > 4 + 1024 // hop
    assert float((middle**2).sum()) == pytest.approx(float((x**2).sum()), rel=1e-6)  # f32 window


def test_k_weighting_has_unit_gain_at_1khz_and_the_shelf_above():
    """1 kHz passes at 0 dB, 8 kHz is lifted by the high shelf (about +4 dB), 20 Hz is cut."""
    f = KWeighting(44100)
    t = torch.arange(44100) / 44100

    def gain_db(hz):
        tone = torch.sin(2 * torch.pi * hz * t).view(1, 1, -1)
        out = f.filter(tone)[..., 4410:-4410]
        return 20 * torch.log10(
            out.pow(2).mean().sqrt() / tone[..., 4410:-4410].pow(2).mean().sqrt()
        )

    assert float(gain_db(1000)) == pytest.approx(0.0, abs=0.05)
    assert 3.0 < float(gain_db(8000)) < 5.0
    assert float(gain_db(20)) < -2.0  # 257 taps resolve the 38 Hz high-pass only in part


def test_options_of_the_other_form_are_refused():
    with pytest.raises(ValueError, match="form=sat takes no w_phs, scale"):
        MultiResolutionSTFT(44100, 2, form="sat", sc_norm="crop")
    with pytest.raises(ValueError, match="fft size 64 with hop 64"):
        MultiResolutionSTFT(44100, 2, form="sat", fft_sizes=[64], hop_sizes=[64], win_lengths=[64])
    with pytest.raises(ValueError, match="form='tight'"):
        MultiResolutionSTFT(44100, 2, form="tight")
