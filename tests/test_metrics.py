"""Metrics against hand-computed values, identities, and descript-audio-codec's own classes."""

from __future__ import annotations

import math

import pytest
import torch
from torchaudio.functional import melscale_fbanks

from audioae.data.synthetic import SyntheticMusic
from audioae.metrics import (
    _stft_magnitude,
    lowpass,
    mel_distance,
    min_length,
    si_sdr,
    stft_distance,
    visqol,
    visqol_available,
    visqol_min_length,
)

SR = 44100


def noise(*shape: int, seed: int = 0, scale: float = 0.3) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_si_sdr_of_signal_plus_orthogonal_noise_is_the_power_ratio():
    # sin and cos of one frequency over whole periods are orthogonal: alpha = 1 exactly, the
    # projection is s itself and the residual is the added noise n.
    t = torch.arange(8000, dtype=torch.float64) / 8000
    s = torch.sin(2 * math.pi * 5 * t)[None]
    n = 0.1 * torch.cos(2 * math.pi * 5 * t)[None]
    assert abs(torch.dot(s[0], n[0]).item()) < 1e-6
    expected = 10 * math.log10((s**2).sum().item() / (n**2).sum().item())
    assert expected == pytest.approx(20.0, abs=1e-6)
    assert si_sdr(s + n, s).item() == pytest.approx(expected, abs=1e-4)
    # est = 2 s + n: alpha = 2, the target is 2 s, the residual still n.
    assert si_sdr(2 * s + n, s).item() == pytest.approx(expected + 20 * math.log10(2), abs=1e-4)


def test_si_sdr_averages_channels_and_items():
    t = torch.arange(8000, dtype=torch.float64) / 8000
    s = torch.sin(2 * math.pi * 5 * t)
    n = torch.cos(2 * math.pi * 5 * t)
    ref = torch.stack([s, s])[None].repeat(2, 1, 1)  # (2, 2, T)
    est = ref.clone()
    est[0, 0] += 0.1 * n  # 20 dB
    est[0, 1] += 0.01 * n  # 40 dB
    est[1] += 0.1 * n  # 20 dB, both channels
    assert si_sdr(est[0], ref[0]).item() == pytest.approx(30.0, abs=1e-3)
    assert si_sdr(est, ref).item() == pytest.approx(25.0, abs=1e-3)


def test_identical_signals_high_si_sdr_and_zero_distances():
    x = noise(2, 2, 12000)
    assert si_sdr(x, x).item() > 100
    assert torch.isfinite(si_sdr(x, x))
    assert stft_distance(x, x).item() == 0.0
    assert mel_distance(x, x, SR).item() == 0.0


def test_scaled_estimate_keeps_si_sdr_but_not_mel_distance():
    ref = noise(1, 10000, seed=1)
    est = ref + noise(1, 10000, seed=2, scale=0.05)
    base = si_sdr(est, ref).item()
    assert si_sdr(0.5 * est, ref).item() == pytest.approx(base, abs=1e-6)
    assert si_sdr(4.0 * est, ref).item() == pytest.approx(base, abs=1e-6)
    assert mel_distance(0.5 * ref, ref, SR).item() > 0.1
    assert stft_distance(0.5 * ref, ref).item() > 0.1


def test_silent_estimate_scores_zero_db_but_a_large_distance():
    # Why audioae-eval never shows SI-SDR alone: silence beats a poor reconstruction on it.
    ref = noise(1, 10000)
    silence = torch.zeros_like(ref)
    assert si_sdr(silence, ref).item() == pytest.approx(0.0, abs=1e-9)
    assert si_sdr(ref + noise(1, 10000, seed=3, scale=0.4), ref).item() < 0
    assert mel_distance(silence, ref, SR).item() > 5


def test_ten_times_louder_is_two_decades_plus_nine_magnitudes_per_scale():
    # Where no magnitude is below the clamp, |log10((10|Y|)^2) - log10(|Y|^2)| = 2 for every
    # bin, and |10|Y| - |Y|| = 9|Y|: each scale contributes 2 + 9 mean|Y|.
    ref = noise(1, 16000, seed=4)
    mags = [_stft_magnitude(ref[None], w) for w in (2048, 512)]
    assert min(m.min().item() for m in mags) > 1e-5
    expected = sum(2 + 9 * m.mean().item() for m in mags)
    assert stft_distance(10 * ref, ref).item() == pytest.approx(expected, rel=1e-5)

    fbanks = [
        melscale_fbanks(w // 2 + 1, 0.0, SR / 2, n, SR, norm="slaney", mel_scale="slaney")
        for n, w in ((150, 2048), (80, 512))
    ]
    mels = [(m.transpose(-1, -2) @ f) for m, f in zip(mags, fbanks)]
    assert min(m.min().item() for m in mels) > 1e-5
    expected = sum(2 + 9 * m.mean().item() for m in mels)
    assert mel_distance(10 * ref, ref, SR).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("sample_rate", "shape"), [(44100, (2, 2, 20000)), (16000, (3, 1, 5000)), (24000, (1, 9000))]
)
def test_equal_to_descript_audio_codec_losses(sample_rate, shape):
    audiotools = pytest.importorskip("audiotools")
    from dac.nn.loss import MelSpectrogramLoss, MultiScaleSTFTLoss

    ref = noise(*shape, seed=5)
    est = ref + noise(*shape, seed=6, scale=0.1)

    def signal(x):
        return audiotools.AudioSignal(x.clone(), sample_rate)

    dac_mel = MelSpectrogramLoss()(signal(est), signal(ref)).item()
    dac_stft = MultiScaleSTFTLoss()(signal(est), signal(ref)).item()
    assert mel_distance(est, ref, sample_rate).item() == pytest.approx(dac_mel, rel=1e-5)
    assert stft_distance(est, ref).item() == pytest.approx(dac_stft, rel=1e-5)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="one shape"):
        si_sdr(torch.zeros(1, 100), torch.zeros(2, 100))
    with pytest.raises(ValueError, match="one shape"):
        stft_distance(torch.zeros(100), torch.zeros(100))
    short = torch.zeros(1, min_length() - 1)
    with pytest.raises(ValueError, match="too few"):
        mel_distance(short, short, SR)
    ok = noise(1, min_length())
    assert stft_distance(ok, ok).item() == 0.0


def test_visqol_is_optional():
    if not visqol_available():
        with pytest.raises(ImportError, match="visqol-python"):
            visqol(torch.zeros(1, 48000), torch.zeros(1, 48000), 48000)
        pytest.skip("visqol-python not installed (optional): ViSQOL not checked")
    ref = noise(1, 48000 * 2, seed=7, scale=0.1)
    assert visqol(ref, ref, 48000).item() > 4.0


def test_visqol_scores_music_and_its_degradations():
    """Real ViSQOL v3 scores (the [dev] extra installs visqol-python) on a second of synthetic
    stereo music at 44.1 kHz, resampled to 48 kHz inside: the input itself scores near the top
    of the 1-5 MOS scale, a 16 kHz low-pass a little lower, a 4 kHz low-pass near the bottom;
    a batch scores the mean of its items."""
    if not visqol_available():
        pytest.skip("visqol-python not installed (the [dev] extra has it)")
    ref = SyntheticMusic(sample_rate=SR, channels=2, sample_size=SR, seed=0)[0][None]
    scores = [visqol(lowpass(ref, SR, hz), ref, SR).item() for hz in (SR / 2, 16000.0, 4000.0)]
    identity, wide, narrow = scores
    assert 4.6 < identity <= 5.0  # 4.73 measured (visqol-python 3.8)
    assert 3.8 < wide < identity - 0.3  # 4.18
    assert 1.0 <= narrow < 2.0  # 1.49
    batch = torch.cat([ref, lowpass(ref, SR, 4000.0)])
    pair = visqol(batch, torch.cat([ref, ref]), SR).item()
    assert pair == pytest.approx((identity + narrow) / 2, abs=1e-9)


def test_visqol_refuses_clips_too_short_to_score():
    if not visqol_available():
        pytest.skip("visqol-python not installed (the [dev] extra has it)")
    # 44 hops of 960 samples plus one 3840-sample window at 48 kHz: 42336 samples at 44.1 kHz
    assert visqol_min_length(48000) == 46080 and visqol_min_length(SR) == 42336
    ok = noise(1, 42336, seed=8, scale=0.1)
    assert 4.0 < visqol(ok, ok, SR).item() <= 5.0
    with pytest.raises(ValueError, match="too few samples for ViSQOL"):
        visqol(ok[:, :-1], ok[:, :-1], SR)
