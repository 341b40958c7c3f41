"""Procedurally generated, music-like audio: the embedded default data set.

``SyntheticMusic`` lets every config, test and smoke run train without a single audio file. It is
not meant to teach a model music; it is a smoke signal whose structure makes the usual codec
losses meaningful:

- harmonic content (notes with 3-12 partials whose amplitudes fall with the partial number and
  whose upper partials decay faster, under ADSR envelopes; 2-4 note chords drawn from a scale,
  a bass line and a melody), which multi-resolution STFT losses see as sharp spectral peaks;
- transients (kick drums with a falling-pitch sine and a click, snares of tone plus band-limited
  noise, hi-hats of high-passed noise, all with fast exponential decays), which time-domain
  losses and the short STFT windows see;
- a random tempo, scale, key, timbre, groove and mix per item, equal-power panning over any
  number of channels, small per-channel delays and an optional short noise-tail room, so that
  stereo items have width and channels are neither identical nor unrelated.

Item n is a function of ``(seed, n)`` only (``numpy.random.default_rng((seed, n))``), so it is
the same in every worker and on every resume. Peaks are scaled to a random level in
``[min_peak, max_peak]``. Generation is vectorised numpy: a 1.5 s, 44.1 kHz stereo item takes a
few milliseconds.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch.utils.data import Dataset

# Seven-note modes as semitone offsets from the tonic: ionian, aeolian, dorian, mixolydian,
# harmonic minor.
_SCALES = np.array(
    [
        [0, 2, 4, 5, 7, 9, 11],
        [0, 2, 3, 5, 7, 8, 10],
        [0, 2, 3, 5, 7, 9, 10],
        [0, 2, 4, 5, 7, 9, 10],
        [0, 2, 3, 5, 7, 8, 11],
    ]
)


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


class _Mix:
    """A (channels, length) buffer that voices are rendered into, each clipped to the item."""

    def __init__(self, channels: int, length: int, sample_rate: int,
                 rng: np.random.Generator) -> None:
        self.rng = rng
        self.out = np.zeros((channels, length), dtype=np.float64)
        self.sr = sample_rate
        self.length = length
        # Loudspeaker positions in [-1, 1]; pan gains interpolate between the two nearest.
        self.positions = np.linspace(-1.0, 1.0, channels) if channels > 1 else np.zeros(1)

    def span(self, onset: float, duration: float) -> tuple[int, int, np.ndarray] | None:
        """The item's sample range covered by [onset, onset + duration) s, and its local time."""
        start = round(onset * self.sr)
        i0, i1 = max(start, 0), min(start + round(duration * self.sr), self.length)
        if i1 <= i0:
            return None
        return i0, i1, (np.arange(i0, i1) - start) / self.sr

    def pan_gains(self, pan: float) -> np.ndarray:
        channels = len(self.positions)
        if channels == 1:
            return np.ones(1)
        # Equal-power law between adjacent loudspeakers: sum of squared gains is 1.
        dist = np.abs(pan - self.positions) * (channels - 1) / 2.0
        return np.cos(np.clip(dist, 0.0, 1.0) * np.pi / 2.0)

    def add(self, i0: int, signal: np.ndarray, pan: float, spread_s: float = 0.0) -> None:
        """Adds a mono signal starting at sample i0, panned, each channel delayed by up to
        ``spread_s`` seconds (the delays give width without changing the spectrum much)."""
        gains = self.pan_gains(pan)
        channels = len(gains)
        delays = np.round(self.rng.uniform(0.0, spread_s * self.sr, channels)).astype(int)
        for c in range(channels):
            if gains[c] < 1e-4:
                continue
            a = i0 + delays[c]
            n = min(len(signal), self.length - a)
            if n > 0:
                self.out[c, a : a + n] += gains[c] * signal[:n]


def _adsr(t: np.ndarray, attack: float, decay: float, sustain: float, gate: float,
          release: float) -> np.ndarray:
    """Linear attack to 1, exponential decay to ``sustain``, exponential release after ``gate``."""
    rise = np.minimum(t / attack, 1.0)
    fall = sustain + (1.0 - sustain) * np.exp(-np.maximum(t - attack, 0.0) / decay)
    env = np.where(t < attack, rise, fall)
    return env * np.exp(-np.maximum(t - gate, 0.0) / release)


def _harmonic(t: np.ndarray, f0: float, amps: np.ndarray, spread: float, sr: int) -> np.ndarray:
    """sum_k amps[k] sin(2π (k+1) f0 t) exp(-spread k t): partial k decays faster with k.

    Uses the Chebyshev recurrence sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x) and a running
    product for the decays, so the cost is a few multiplies per partial, no transcendental.
    Partials at or above 0.45 * sr are dropped (no aliasing).
    """
    x = 2.0 * np.pi * f0 * t
    s_prev, s_cur = np.zeros_like(x), np.sin(x)
    two_cos = 2.0 * np.cos(x)
    step = np.exp(-spread * t)
    decay = np.ones_like(x)
    acc = amps[0] * s_cur
    for k in range(1, len(amps)):
        if (k + 1) * f0 >= 0.45 * sr:
            break
        s_prev, s_cur = s_cur, two_cos * s_cur - s_prev
        decay *= step
        acc += amps[k] * s_cur * decay
    return acc


class SyntheticMusic(Dataset[torch.Tensor]):
    """Endless music-like items: item n is a float32 tensor (channels, sample_size) in [-1, 1].

    Args:
        sample_rate: Hz.
        channels: any count >= 1; voices are panned over loudspeakers spread evenly in [-1, 1].
        sample_size: samples per item.
        seed: >= 0; item n depends on (seed, n) only.
        min_bpm, max_bpm: range of the per-item tempo.
        min_peak, max_peak: range of the per-item peak level (full scale is 1).
    """

    def __init__(self, sample_rate: int, channels: int, sample_size: int, seed: int = 0,
                 min_bpm: float = 70.0, max_bpm: float = 170.0, min_peak: float = 0.3,
                 max_peak: float = 0.9) -> None:
        if sample_rate < 1000 or channels < 1 or sample_size < 1 or seed < 0:
            raise ValueError(
                f"SyntheticMusic: need sample_rate >= 1000, channels >= 1, sample_size >= 1 and "
                f"seed >= 0; got {sample_rate}, {channels}, {sample_size}, {seed}"
            )
        if not 0 < min_bpm <= max_bpm or not 0 < min_peak <= max_peak <= 1:
            raise ValueError(
                f"SyntheticMusic: need 0 < min_bpm <= max_bpm and 0 < min_peak <= max_peak <= 1; "
                f"got bpm [{min_bpm}, {max_bpm}], peak [{min_peak}, {max_peak}]"
            )
        self.sample_rate = sample_rate
        self.channels = channels
        self.sample_size = sample_size
        self.seed = seed
        self.bpm = (float(min_bpm), float(max_bpm))
        self.peak = (float(min_peak), float(max_peak))

    def __len__(self) -> int:
        # Unbounded in fact; a finite number keeps samplers that ask happy.
        return sys.maxsize // 2

    def __getitem__(self, n: int) -> torch.Tensor:
        n = int(n)
        if n < 0:
            raise IndexError(f"SyntheticMusic: draw number must be >= 0, got {n}")
        audio = self.render(np.random.default_rng((self.seed, n)))
        return torch.from_numpy(audio).clamp_(-1.0, 1.0)

    def render(self, rng: np.random.Generator) -> np.ndarray:
        """One item from a generator: float32 (channels, sample_size)."""
        sr = self.sample_rate
        mix = _Mix(self.channels, self.sample_size, sr, rng)
        duration = self.sample_size / sr
        beat = 60.0 / rng.uniform(*self.bpm)
        bar = 4.0 * beat
        # The item starts part-way into a bar; events from the bar before ring into it.
        t0 = -bar - rng.uniform(0.0, bar)
        scale = _SCALES[rng.integers(len(_SCALES))]
        tonic = 45 + int(rng.integers(12))  # A2 .. G#3

        def pitch(degree: int, octave: int) -> float:
            return tonic + 12 * (octave + degree // 7) + scale[degree % 7]

        def timbre(max_partials: int) -> tuple[np.ndarray, float]:
            k = np.arange(1, int(rng.integers(3, max_partials + 1)) + 1)
            amps = k ** -rng.uniform(0.7, 2.0) * rng.uniform(0.5, 1.0, len(k))
            if rng.random() < 0.3:  # hollow, clarinet-like: weak even partials
                amps[1::2] *= rng.uniform(0.05, 0.4)
            return amps, rng.uniform(0.5, 8.0)

        def note(onset: float, gate: float, midi: float, level: float, pan: float,
                 amps: np.ndarray, spread: float, adsr: tuple[float, float, float, float]):
            attack, decay, sustain, release = adsr
            span = mix.span(onset, gate + 5.0 * release)
            if span is None:
                return
            i0, _, t = span
            f0 = _midi_hz(midi) * 2.0 ** (rng.normal(0.0, 0.03) / 12.0)  # a little detune
            env = _adsr(t, attack, decay, sustain, gate, release)
            mix.add(i0, level * env * _harmonic(t, f0, amps, spread, sr), pan,
                    rng.uniform(0.0, 6e-4))

        # Chords: one every bar or half bar, 2-4 stacked thirds of the scale.
        chord_len = bar / float(rng.choice([1, 2]))
        amps, spread = timbre(10)
        adsr = (rng.uniform(0.005, 0.08), rng.uniform(0.05, 0.4), rng.uniform(0.2, 0.8),
                rng.uniform(0.05, 0.4))
        width = rng.uniform(0.0, 0.9)
        chord_level = rng.uniform(0.3, 0.6)
        roots = []
        t = t0
        while t < duration:
            root = int(rng.integers(7))
            roots.append((t, root))
            count = int(rng.integers(2, 5))
            gate = chord_len * rng.uniform(0.5, 1.0)
            for i, degree in enumerate(range(root, root + 2 * count, 2)):
                pan = width * (2.0 * i / max(count - 1, 1) - 1.0)
                note(t, gate, pitch(degree, 1), chord_level / np.sqrt(count), pan, amps,
                     spread, adsr)
            t += chord_len

        # Bass on beats, following the chord roots.
        if rng.random() < 0.8:
            amps, spread = timbre(6)
            adsr = (0.005, rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.9), rng.uniform(0.03, 0.1))
            level = rng.uniform(0.3, 0.7)
            for t, root in roots:
                for b in np.arange(t, t + chord_len - 1e-9, beat):
                    if rng.random() < 0.7:
                        note(b, beat * rng.uniform(0.3, 0.9), pitch(root, -1), level, 0.0,
                             amps, spread, adsr)

        # Melody on eighths, an octave above the chords.
        if rng.random() < 0.8:
            amps, spread = timbre(12)
            adsr = (rng.uniform(0.003, 0.03), rng.uniform(0.05, 0.2), rng.uniform(0.3, 0.8),
                    rng.uniform(0.02, 0.2))
            level, pan = rng.uniform(0.25, 0.6), rng.uniform(-0.5, 0.5)
            degree = int(rng.integers(7))
            for t in np.arange(t0, duration, beat / 2.0):
                if rng.random() < 0.5:
                    degree = int(np.clip(degree + rng.integers(-3, 4), -3, 10))
                    note(t, beat / 2.0 * rng.uniform(0.5, 2.0), pitch(degree, 2), level, pan,
                         amps, spread, adsr)

        self._drums(mix, rng, t0, duration, beat)

        if self.channels > 1 and rng.random() < 0.7:
            self._room(mix, rng)

        peak = np.abs(mix.out).max()
        if peak > 0.0:
            mix.out *= rng.uniform(*self.peak) / peak
        return mix.out.astype(np.float32)

    def _drums(self, mix: _Mix, rng: np.random.Generator, t0: float, duration: float,
               beat: float) -> None:
        """Kick, snare and hi-hat on a sixteenth grid, with random groove and humanised timing."""
        sr = self.sample_rate
        step = beat / 4.0
        kick_hz = (rng.uniform(120.0, 250.0), rng.uniform(40.0, 65.0), rng.uniform(0.01, 0.04))
        kick_decay, kick_level = rng.uniform(0.08, 0.3), rng.uniform(0.5, 1.0)
        snare_decay, snare_level = rng.uniform(0.04, 0.15), rng.uniform(0.25, 0.6)
        snare_tone = rng.uniform(150.0, 260.0)
        hat_decay, hat_level = rng.uniform(0.01, 0.05), rng.uniform(0.05, 0.25)
        hat_pan = rng.uniform(-0.6, 0.6)
        # Per-step onset probabilities over one bar of sixteenths.
        grid = np.arange(16)
        p_kick = np.where(grid % 4 == 0, rng.uniform(0.5, 1.0), rng.uniform(0.0, 0.15))
        p_kick[0] = 0.95
        p_snare = np.where(grid % 8 == 4, rng.uniform(0.6, 1.0), rng.uniform(0.0, 0.08))
        p_hat = np.where(grid % 2 == 0, rng.uniform(0.5, 1.0), rng.uniform(0.0, 0.5))

        for i, t in enumerate(np.arange(t0, duration, step)):
            t = t + rng.normal(0.0, 0.004)
            s = i % 16
            if rng.random() < p_kick[s] and (span := mix.span(t, 5.0 * kick_decay)):
                i0, _, tt = span
                f_hi, f_lo, tau = kick_hz
                # Phase of f(t) = f_lo + (f_hi - f_lo) exp(-t / tau), integrated in closed form.
                phase = 2 * np.pi * (f_lo * tt + (f_hi - f_lo) * tau * (1 - np.exp(-tt / tau)))
                body = np.sin(phase) * np.exp(-tt / kick_decay)
                n_click = min(len(tt), int(0.01 * sr) + 1)
                body[:n_click] += 0.3 * rng.standard_normal(n_click) * np.exp(-tt[:n_click] / 0.002)
                mix.add(i0, kick_level * body, 0.0)
            if rng.random() < p_snare[s] and (span := mix.span(t, 5.0 * snare_decay)):
                i0, _, tt = span
                noise = np.diff(rng.standard_normal(len(tt) + 1)) * 0.6
                tone = 0.5 * np.sin(2 * np.pi * snare_tone * tt) * np.exp(-tt / 0.03)
                mix.add(i0, snare_level * (noise * np.exp(-tt / snare_decay) + tone),
                        rng.uniform(-0.2, 0.2), 3e-4)
            if rng.random() < p_hat[s] and (span := mix.span(t, 5.0 * hat_decay)):
                i0, _, tt = span
                noise = np.diff(rng.standard_normal(len(tt) + 2), n=2) * 0.4
                level = hat_level * rng.uniform(0.5, 1.0)
                mix.add(i0, level * noise * np.exp(-tt / hat_decay), hat_pan, 8e-4)

    def _room(self, mix: _Mix, rng: np.random.Generator) -> None:
        """A short diffuse tail: each channel convolved with its own decaying-noise response."""
        sr = self.sample_rate
        tail = rng.uniform(0.05, 0.3)
        n_ir = max(int(tail * 4.0 * sr), 1)
        t = np.arange(n_ir) / sr
        ir = rng.standard_normal((mix.out.shape[0], n_ir)) * np.exp(-t / tail)
        ir *= rng.uniform(0.05, 0.25) / np.sqrt((ir**2).sum(axis=1, keepdims=True))
        size = 1 << (mix.length + n_ir - 1).bit_length()  # a power of two: a fast FFT
        spectrum = np.fft.rfft(mix.out, size) * np.fft.rfft(ir, size)
        mix.out += np.fft.irfft(spectrum, size)[:, : mix.length]
