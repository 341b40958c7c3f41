"""What the loop logs at a log point: per-scalar means since the last one, and throughput.

Under the default (1, 1) GAN alternation the generator trains on even steps and the
discriminator on odd ones, so the scalars of the one step that lands on a log point describe
only one network (with `log_every=10`, never the generator). As audiocraft's averagers do, every
scalar is averaged over the steps since the last log point that produced it.
"""

from __future__ import annotations

import math
from collections import defaultdict


class Averages:
    """Running sums of step scalars; `pop()` returns the means and starts over.

    Each scalar is averaged over the steps that produced it (a generator loss over the
    generator's steps), so a log point never drops a network's curves. A non-finite value
    (a skipped step) makes its mean non-finite, which is what the curve should show."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, scalars: dict[str, float]) -> None:
        for name, value in scalars.items():
            self.sums[name] += value
            self.counts[name] += 1

    def pop(self) -> dict[str, float]:
        means = {name: total / self.counts[name] for name, total in self.sums.items()}
        self.sums.clear()
        self.counts.clear()
        return means


class Throughput:
    """Wall-clock time of the steps since the last log point, and how much of it went to
    waiting for data: `perf/step_s` (seconds per step, data wait included; validation, demos
    and checkpoints not), `perf/data_wait_s` (seconds per step spent in the data loader) and
    `perf/audio_s_per_s` (seconds of training audio per second, all processes together:
    `audio_per_step / step_s`)."""

    def __init__(self, audio_per_step: float) -> None:
        self.audio_per_step = audio_per_step  # seconds of audio that one step trains on
        self.steps = 0
        self.step_s = 0.0
        self.wait_s = 0.0

    def add(self, step_s: float, wait_s: float) -> None:
        self.steps += 1
        self.step_s += step_s
        self.wait_s += wait_s

    def pop(self) -> dict[str, float]:
        if self.steps == 0:
            return {}
        step_s, wait_s = self.step_s / self.steps, self.wait_s / self.steps
        self.steps, self.step_s, self.wait_s = 0, 0.0, 0.0
        rate = self.audio_per_step / step_s if step_s > 0 else math.inf
        return {"perf/step_s": step_s, "perf/data_wait_s": wait_s, "perf/audio_s_per_s": rate}
