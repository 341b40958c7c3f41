"""Preemption, time-outs and Ctrl-C: every process finishes the same step, saves, exits.

SIGTERM (preemption; SLURM at the time limit), SIGINT (Ctrl-C) and submitit's time-out signal
(SIGUSR2, or `SIG$SUBMITIT_PREEMPT_SIGNAL`, sent `signal_delay_s` before the limit) only record
the request. The loop all-reduces it after each step, so every process stops after the same
step and they save one checkpoint together (train/loop.py). Only then does `forward()` hand the
time-out signal to the handler that was installed before ours: submitit's, which requeues the
job from rank 0 and exits, and `resume=auto` continues from the checkpoint. Left to itself,
submitit's handler would requeue and exit rank 0 mid-step, without a checkpoint, while the other
processes wait at the next collective.
"""

from __future__ import annotations

import os
import signal


def requeue_signal() -> signal.Signals:
    """The signal submitit sends before a time-out (its `SUBMITIT_PREEMPT_SIGNAL`, USR2)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


class StopRequest:
    """While active, SIGTERM, SIGINT and the requeue signal only record themselves in
    `self.received`; the loop checks after each step. A second Ctrl-C stops at once
    (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.requeue = requeue_signal()
        self.signals = tuple({signal.SIGTERM, signal.SIGINT, self.requeue})
        self.received: list[int] = []
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and signal.SIGINT in self.received:
            raise KeyboardInterrupt
        self.received.append(signum)

    def __enter__(self) -> StopRequest:
        self._previous = {s: signal.signal(s, self._handle) for s in self.signals}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    @property
    def signal(self) -> int | None:
        """The first signal received, or None."""
        return self.received[0] if self.received else None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""

    def forward(self) -> None:
        """Call the handler that the requeue signal had before ours (submitit's requeue, which
        exits on rank 0), if that signal was received: after the checkpoint is saved."""
        handler = self._previous.get(self.requeue)
        if self.requeue in self.received and callable(handler):
            handler(self.requeue, None)
