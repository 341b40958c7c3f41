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
  number of channels, small per-channel delays and optional early reflections, so that
  stereo items have width and channels are neither identical nor unrelated.

Item n is a function of ``(seed, n)`` only (``numpy.random.default_rng((seed, n))``), so it is
the same in every worker and on every resume. Peaks are scaled to a random level in
``[min_peak, max_peak]``. Generation is vectorised float32 numpy: a 1.5 s, 44.1 kHz stereo item
takes about 10 ms on one CPU core.
"""

from __future__ import annotations

import copy
import math
import sys

import numpy as np
import torch
from torch.utils.data import Dataset

from audioae.data.audio_dir import DataError

# Held-out item n is draw HELD_OUT + n: far beyond any run's draws (a million steps of 1024
# items draw fewer than 2**30), so demos and validation are never trained on.
HELD_OUT = 2**50

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
    """A float32 (channels, length) buffer that voices are rendered into, clipped to the item.

    Everything is float32: a 1.5 s voice then fits in cache, several times faster than float64.
    Phases are float32 too (about 1e-3 rad of error after 2 s at 1 kHz: inaudible here).
    """

    def __init__(
        self, channels: int, length: int, sample_rate: int, rng: np.random.Generator
    ) -> None:
        self.rng = rng
        self.out = np.zeros((channels, length), dtype=np.float32)
        self.sr = sample_rate
        self.length = length
        # Loudspeaker positions in [-1, 1]; pan gains interpolate between the two nearest.
        self.positions = np.linspace(-1.0, 1.0, channels) if channels > 1 else np.zeros(1)
        self.diffuse = rng.uniform(0.05, 0.3)

    def span(self, onset: float, duration: float) -> tuple[int, np.ndarray] | None:
        """The first item sample covered by [onset, onset + duration) s, and the covered part's
        float32 time in seconds since the onset; None if it misses the item."""
        start = round(onset * self.sr)
        i0, i1 = max(start, 0), min(start + round(duration * self.sr), self.length)
        if i1 <= i0:
            return None
        return i0, np.arange(i0 - start, i1 - start, dtype=np.float32) / np.float32(self.sr)

    def pan_gains(self, pan: float) -> list[float]:
        channels = len(self.positions)
        if channels == 1:
            return [1.0]
        # Equal-power law between adjacent loudspeakers (squared gains sum to 1), plus a small
        # diffuse share in every channel so that no channel of a wide layout is ever silent.
        dist = np.abs(pan - self.positions) * (channels - 1) / 2.0
        direct = np.cos(np.clip(dist, 0.0, 1.0) * np.pi / 2.0) ** 2
        return np.sqrt((1.0 - self.diffuse) * direct + self.diffuse / channels).tolist()

    def add(self, i0: int, signal: np.ndarray, pan: float, spread_s: float = 0.0) -> None:
        """Adds a mono signal starting at sample i0, panned, each channel delayed by a random
        amount up to ``spread_s`` seconds (width without much change to the spectrum)."""
        gains = self.pan_gains(pan)
        delays = np.round(self.rng.uniform(0.0, spread_s * self.sr, len(gains))).astype(int)
        for c, gain in enumerate(gains):
            a = i0 + int(delays[c])
            n = min(len(signal), self.length - a)
            if gain > 1e-4 and n > 0:
                self.out[c, a : a + n] += gain * signal[:n]


def _adsr(
    t: np.ndarray, attack: float, decay: float, sustain: float, gate: float, release: float
) -> np.ndarray:
    """Linear attack to 1, exponential decay to ``sustain``, exponential release after ``gate``.
    t: float32 seconds since the onset."""
    env = np.exp(np.maximum(t - attack, 0.0) * (-1.0 / decay))
    env *= 1.0 - sustain
    env += sustain
    env *= np.minimum(t * (1.0 / attack), 1.0)
    env *= np.exp(np.maximum(t - gate, 0.0) * (-1.0 / release))
    return env


def _harmonic(
    x: np.ndarray, t: np.ndarray, f0: float, amps: np.ndarray, spread: float, sr: int
) -> np.ndarray:
    """sum_k amps[k] sin((k+1) x) exp(-spread k t): partial k decays faster with k.

    x: float32 phase of the fundamental f0; t: float32 seconds. Uses the Chebyshev recurrence
    sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x) and a running product for the decays: a few
    multiplies per partial, no transcendental. Partials at or above 0.45 * sr are dropped.
    """
    s_prev, s_cur = np.zeros_like(x), np.sin(x)
    two_cos = np.cos(x)
    two_cos *= 2.0
    step = np.exp(t * -spread)
    decay = np.ones_like(x)
    acc = s_cur * amps[0]
    tmp = np.empty_like(x)
    for k in range(1, len(amps)):  # in place: no allocation per partial
        if (k + 1) * f0 >= 0.45 * sr:
            break
        np.multiply(two_cos, s_cur, out=tmp)
        np.subtract(tmp, s_prev, out=s_prev)
        s_prev, s_cur = s_cur, s_prev
        decay *= step
        np.multiply(s_cur, decay, out=tmp)
        tmp *= amps[k]
        acc += tmp
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

    def __init__(
        self,
        sample_rate: int,
        channels: int,
        sample_size: int,
        seed: int = 0,
        min_bpm: float = 70.0,
        max_bpm: float = 170.0,
        min_peak: float = 0.3,
        max_peak: float = 0.9,
    ) -> None:
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
        self._first = 0  # draw number of item 0 (HELD_OUT for the held-out items)
        # Nothing is kept out of training but draw numbers (see held_out); no files.
        self.held_out_names: list[str] = []

    def held_out(self, path: str | None = None) -> SyntheticMusic:
        """Items never drawn for training, for demos and validation: item n is draw
        ``HELD_OUT + n``. There are no files, so no held-out folder (``path``) either."""
        if path is not None:
            raise DataError(
                f"SyntheticMusic has no files: a held-out folder ({path}) needs data=audio_dir"
            )
        other = copy.copy(self)
        other._first = self._first + HELD_OUT
        return other

    def __len__(self) -> int:
        # Unbounded in fact; a finite number keeps samplers that ask happy.
        return sys.maxsize // 2

    def __getitem__(self, n: int) -> torch.Tensor:
        n = int(n)
        if n < 0:
            raise IndexError(f"SyntheticMusic: draw number must be >= 0, got {n}")
        return torch.from_numpy(self.render(np.random.default_rng((self.seed, self._first + n))))

    def render(self, rng: np.random.Generator) -> np.ndarray:
        """One item from a generator: float32 (channels, sample_size), peak in the set range."""
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
            return tonic + 12 * (octave + degree // 7) + float(scale[degree % 7])

        def voice(max_partials: int, adsr: tuple[float, ...]) -> tuple:
            """A timbre: partial amplitudes, extra decay per partial, and an envelope."""
            k = np.arange(1, int(rng.integers(3, max_partials + 1)) + 1)
            amps = k ** -rng.uniform(0.7, 2.0) * rng.uniform(0.5, 1.0, len(k))
            if rng.random() < 0.3:  # hollow, clarinet-like: weak even partials
                amps[1::2] *= rng.uniform(0.05, 0.4)
            return amps.astype(np.float32), rng.uniform(0.5, 8.0), adsr

        def note(voice: tuple, onset: float, gate: float, midi: float, level: float, pan: float):
            amps, spread, (attack, decay, sustain, release) = voice
            span = mix.span(onset, gate + 5.0 * release)
            if span is None:
                return
            i0, t = span
            f0 = _midi_hz(midi) * 2.0 ** (rng.normal(0.0, 0.03) / 12.0)  # a little detune
            signal = _harmonic(t * (2.0 * np.pi * f0), t, f0, amps, spread, sr)
            signal *= _adsr(t, attack, decay, sustain, gate, release)
            signal *= level
            mix.add(i0, signal, pan, rng.uniform(0.0, 6e-4))

        def uniform(*ranges: tuple[float, float]) -> tuple[float, ...]:
            return tuple(rng.uniform(lo, hi) for lo, hi in ranges)

        # Chords: one every bar or half bar, 2-4 stacked thirds of the scale.
        chord_len = bar / float(rng.choice([1, 2]))
        pad = voice(10, uniform((0.005, 0.08), (0.05, 0.4), (0.2, 0.8), (0.05, 0.4)))
        width, chord_level = rng.uniform(0.0, 0.9), rng.uniform(0.3, 0.6)
        roots = []
        t = t0
        while t < duration:
            root = int(rng.integers(7))
            roots.append((t, root))
            count = int(rng.integers(2, 5))
            gate = chord_len * rng.uniform(0.5, 1.0)
            for i, degree in enumerate(range(root, root + 2 * count, 2)):
                pan = width * (2.0 * i / max(count - 1, 1) - 1.0)
                note(pad, t, gate, pitch(degree, 1), chord_level / math.sqrt(count), pan)
            t += chord_len

        # Bass on beats, following the chord roots.
        if rng.random() < 0.8:
            bass = voice(6, (0.005, *uniform((0.05, 0.3), (0.3, 0.9), (0.03, 0.1))))
            level = rng.uniform(0.3, 0.7)
            for t, root in roots:
                for b in np.arange(t, t + chord_len - 1e-9, beat).tolist():
                    if rng.random() < 0.7:
                        note(bass, b, beat * rng.uniform(0.3, 0.9), pitch(root, -1), level, 0.0)

        # Melody on eighths, an octave above the chords, moving by small steps.
        if rng.random() < 0.8:
            lead = voice(12, uniform((0.003, 0.03), (0.05, 0.2), (0.3, 0.8), (0.02, 0.2)))
            level, pan = rng.uniform(0.25, 0.6), rng.uniform(-0.5, 0.5)
            degree = int(rng.integers(7))
            for t in np.arange(t0, duration, beat / 2.0).tolist():
                if rng.random() < 0.5:
                    degree = int(np.clip(degree + rng.integers(-3, 4), -3, 10))
                    gate = beat / 2.0 * rng.uniform(0.5, 2.0)
                    note(lead, t, gate, pitch(degree, 2), level, pan)

        self._drums(mix, rng, t0, duration, beat)
        if self.channels > 1 and rng.random() < 0.7:
            self._room(mix, rng)

        peak = float(np.abs(mix.out).max())
        if peak > 0.0:
            mix.out *= rng.uniform(*self.peak) / peak
        return np.clip(mix.out, -1.0, 1.0, out=mix.out)

    def _drums(
        self, mix: _Mix, rng: np.random.Generator, t0: float, duration: float, beat: float
    ) -> None:
        """Kick, snare and hi-hat on a sixteenth grid, with a random groove and loose timing."""
        sr = self.sample_rate
        f_hi, f_lo, tau = (
            rng.uniform(120.0, 250.0),
            rng.uniform(40.0, 65.0),
            rng.uniform(0.01, 0.04),
        )
        kick_decay, kick_level = rng.uniform(0.08, 0.3), rng.uniform(0.5, 1.0)
        snare_decay, snare_level = rng.uniform(0.03, 0.1), rng.uniform(0.25, 0.6)
        snare_hz = rng.uniform(150.0, 260.0)
        hat_decay, hat_level = rng.uniform(0.01, 0.05), rng.uniform(0.05, 0.25)
        hat_pan = rng.uniform(-0.6, 0.6)
        # Onset probabilities for the sixteen steps of a bar.
        grid = np.arange(16)
        p_kick = np.where(grid % 4 == 0, rng.uniform(0.5, 1.0), rng.uniform(0.0, 0.15))
        p_kick[0] = 0.95
        p_snare = np.where(grid % 8 == 4, rng.uniform(0.6, 1.0), rng.uniform(0.0, 0.08))
        p_hat = np.where(grid % 2 == 0, rng.uniform(0.5, 1.0), rng.uniform(0.0, 0.5))

        for i, t in enumerate(np.arange(t0, duration, beat / 4.0).tolist()):
            t += rng.normal(0.0, 0.004)
            s = i % 16
            if rng.random() < p_kick[s] and (span := mix.span(t, 5.0 * kick_decay)):
                i0, tt = span
                # Phase of f(t) = f_lo + (f_hi - f_lo) exp(-t / tau), integrated in closed form.
                phase = tt * f_lo + (1.0 - np.exp(tt * (-1.0 / tau))) * ((f_hi - f_lo) * tau)
                body = np.sin(phase * (2.0 * np.pi)) * np.exp(tt * (-1.0 / kick_decay))
                k = min(len(tt), int(0.01 * sr) + 1)  # a 2 ms noise click on the attack
                body[:k] += rng.standard_normal(k, np.float32) * np.exp(tt[:k] * -500.0) * 0.3
                mix.add(i0, body * kick_level, 0.0)
            if rng.random() < p_snare[s] and (span := mix.span(t, 5.0 * snare_decay)):
                i0, tt = span
                noise = np.diff(rng.standard_normal(len(tt) + 1, np.float32))  # high-passed
                noise *= np.exp(tt * (-1.0 / snare_decay)) * 0.6
                noise += np.sin(tt * (2.0 * np.pi * snare_hz)) * np.exp(tt * -33.0) * 0.5
                mix.add(i0, noise * snare_level, rng.uniform(-0.2, 0.2), 3e-4)
            if rng.random() < p_hat[s] and (span := mix.span(t, 5.0 * hat_decay)):
                i0, tt = span
                noise = np.diff(rng.standard_normal(len(tt) + 2, np.float32), n=2)  # brighter
                noise *= np.exp(tt * (-1.0 / hat_decay)) * (0.4 * hat_level * rng.uniform(0.5, 1))
                mix.add(i0, noise, hat_pan, 8e-4)

    def _room(self, mix: _Mix, rng: np.random.Generator) -> None:
        """Early reflections: a few delayed, decaying copies per channel, each taken from a
        random channel, which decorrelates the channels (far cheaper than a convolution)."""
        dry = mix.out.copy()
        channels, length = dry.shape
        tail = rng.uniform(0.01, 0.05)
        for c in range(channels):
            for _ in range(6):
                delay = int(rng.uniform(0.003, 3.0 * tail) * self.sample_rate)
                if 0 < delay < length:
                    gain = rng.uniform(0.05, 0.25) * math.exp(-delay / (tail * self.sample_rate))
                    mix.out[c, delay:] += dry[rng.integers(channels), :-delay] * gain
