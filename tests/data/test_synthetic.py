import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from audioae.data import DataError, StepBatches, SyntheticMusic
from audioae.data.synthetic import HELD_OUT, _harmonic


@pytest.fixture(scope="module")
def music() -> SyntheticMusic:
    return SyntheticMusic(sample_rate=44100, channels=2, sample_size=66150, seed=3)


def test_item_is_a_function_of_seed_and_draw(music):
    again = SyntheticMusic(sample_rate=44100, channels=2, sample_size=66150, seed=3)
    assert torch.equal(music[7], again[7])
    assert torch.equal(music[7], music[7])
    assert not torch.equal(music[7], music[8])
    other_seed = SyntheticMusic(sample_rate=44100, channels=2, sample_size=66150, seed=4)
    assert not torch.equal(music[7], other_seed[7])


@pytest.mark.parametrize(
    ("sample_rate", "channels", "sample_size"),
    [(8000, 1, 4097), (16000, 2, 8192), (44100, 2, 32768), (48000, 4, 24000), (22050, 3, 1000)],
)
def test_shape_dtype_and_range(sample_rate, channels, sample_size):
    ds = SyntheticMusic(sample_rate=sample_rate, channels=channels, sample_size=sample_size)
    for n in range(4):
        x = ds[n]
        assert x.shape == (channels, sample_size)
        assert x.dtype == torch.float32
        assert torch.isfinite(x).all()
        peak = x.abs().max().item()
        assert 0.3 - 1e-6 <= peak <= 0.9 + 1e-6  # the default peak range
        # Every channel carries signal, even the outer loudspeakers of a wide layout.
        rms = x.pow(2).mean(dim=1).sqrt()
        assert (rms > 0.005).all(), rms


def test_peak_range_is_configurable():
    ds = SyntheticMusic(
        sample_rate=16000, channels=1, sample_size=16000, seed=1, min_peak=0.5, max_peak=0.5
    )
    assert ds[0].abs().max().item() == pytest.approx(0.5, abs=1e-6)


def test_stereo_channels_differ_but_correlate(music):
    x = torch.stack([music[n] for n in range(8)])
    left, right = x[:, 0], x[:, 1]
    assert (left - right).abs().mean() > 1e-3  # panning, delays and reflections give width
    corr = torch.nn.functional.cosine_similarity(left, right, dim=1)
    assert corr.mean() > 0.3  # ...but it is one piece of music, not two


def test_harmonic_partials_have_the_given_amplitudes():
    # A 1 s frame puts partial k of 441 Hz exactly on bin 441 k (no leakage); spread 0 keeps the
    # amplitudes constant.
    sr = 44100
    t = np.arange(sr, dtype=np.float32) / sr
    amps = np.array([1.0, 0.5, 0.25, 0.125], dtype=np.float32)
    x = _harmonic(t * np.float32(2 * np.pi * 441), t, 441.0, amps, 0.0, sr)
    spectrum = np.abs(np.fft.rfft(x)) * 2 / sr
    np.testing.assert_allclose(spectrum[[441, 882, 1323, 1764]], amps, atol=1e-3)
    spectrum[[441, 882, 1323, 1764]] = 0
    assert spectrum.max() < 1e-3


def test_harmonic_drops_partials_above_nyquist_margin():
    sr = 8000
    t = np.arange(sr, dtype=np.float32) / sr
    x = _harmonic(t * np.float32(2 * np.pi * 1900), t, 1900.0, np.ones(8, np.float32), 0.0, sr)
    spectrum = np.abs(np.fft.rfft(x)) * 2 / sr
    # 3.8 kHz is below Nyquist but above 0.45 * sr: dropped, as is everything above.
    np.testing.assert_allclose(spectrum[[1900, 3800]], [1.0, 0.0], atol=1e-3)
    assert spectrum.sum() == pytest.approx(1.0, abs=0.01)


def _peaks_db(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Local maxima (Hz, dB re the maximum) of the Hann-windowed magnitude spectrum between 50 Hz
    and 5 kHz, and the median level of that band in dB."""
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    band = (freqs > 50) & (freqs < 5000)
    db = 20 * np.log10(mag[band] / mag[band].max() + 1e-12)
    is_peak = (db[1:-1] > db[:-2]) & (db[1:-1] > db[2:])
    return freqs[band][1:-1][is_peak], db[1:-1][is_peak], np.median(db)


def test_items_have_harmonic_spectral_peaks(music):
    sr = music.sample_rate
    harmonic = 0
    for n in range(6):
        x = music[n].mean(dim=0).numpy().astype(np.float64)
        freqs, db, median = _peaks_db(x, sr)
        # Tonal: the strongest peaks stand far above the spectral floor (white noise: ~10 dB).
        assert db.max() - median > 35
        # Harmonic: among the strong peaks, some pair lies at a 2:1 or 3:1 frequency ratio.
        strong = freqs[db > -30]
        ratios = strong[None, :] / strong[:, None]
        harmonic += (np.abs(ratios - 2) < 0.01).any() or (np.abs(ratios - 3) < 0.015).any()
    assert harmonic >= 5  # about 1 item in 300 has too few strong partials to pair


def test_items_have_percussive_onsets(music):
    sr = music.sample_rate
    frame = sr // 100  # 10 ms
    for n in range(6):
        x = music[n].mean(dim=0).numpy().astype(np.float64)
        high = np.diff(x)  # first difference: energy weighted towards high frequencies
        energy = (high[: len(high) // frame * frame].reshape(-1, frame) ** 2).mean(axis=1)
        db = 10 * np.log10(energy + 1e-12)
        jumps = np.diff(db)
        # Several sudden broadband bursts (> 8 dB in 10 ms) in 1.5 s: drums, not pads.
        assert (jumps > 8).sum() >= 2, jumps.max()
        assert db.max() - np.median(db) > 6


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="seed"):
        SyntheticMusic(sample_rate=16000, channels=1, sample_size=100, seed=-1)
    with pytest.raises(ValueError, match="bpm"):
        SyntheticMusic(sample_rate=16000, channels=1, sample_size=100, min_bpm=120, max_bpm=60)
    with pytest.raises(IndexError):
        SyntheticMusic(sample_rate=16000, channels=1, sample_size=100)[-1]


def test_step_batches_count_up_from_start_forever():
    it = iter(StepBatches(batch_size=2, start=5))
    assert [next(it) for _ in range(3)] == [[10, 11], [12, 13], [14, 15]]
    with pytest.raises(TypeError):
        len(StepBatches(2))  # endless: the training loop decides when to stop
    with pytest.raises(ValueError):
        StepBatches(2, start=-1)


def test_step_batches_of_processes_are_disjoint_and_interleaved():
    ranks = [iter(StepBatches(batch_size=2, start=1, rank=r, world=3)) for r in range(3)]
    assert [next(it) for it in ranks] == [[6, 7], [8, 9], [10, 11]]
    assert [next(it) for it in ranks] == [[12, 13], [14, 15], [16, 17]]


def test_resuming_the_sampler_continues_the_stream_with_workers():
    ds = SyntheticMusic(sample_rate=8000, channels=2, sample_size=512, seed=0)
    batch = 3

    def batches(start: int, workers: int, count: int) -> list[torch.Tensor]:
        sampler = StepBatches(batch, start=start)
        loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers)
        it = iter(loader)
        return [next(it) for _ in range(count)]

    full = batches(0, 0, 4)
    resumed = batches(2, 2, 2)  # "resume at step 2" with two workers
    for a, b in zip(full[2:], resumed):
        assert torch.equal(a, b)


def test_held_out_items_are_draws_no_run_reaches():
    ds = SyntheticMusic(sample_rate=8000, channels=1, sample_size=800, seed=5)
    held = ds.held_out()
    assert torch.equal(held[3], ds[HELD_OUT + 3])
    assert not torch.equal(held[3], ds[3])
    assert ds.held_out_names == []
    with pytest.raises(DataError, match="needs data=audio_dir"):
        ds.held_out("/some/folder")
