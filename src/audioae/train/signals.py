"""Preemption and Ctrl-C: finish the step, save a checkpoint, exit cleanly."""

from __future__ import annotations

import signal


class StopRequest:
    """While active, SIGTERM and SIGINT only set `self.signal`; the loop checks it after each
    step. A second signal stops at once (KeyboardInterrupt)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self) -> StopRequest:
        self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""
