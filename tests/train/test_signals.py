import os
import signal

import pytest

from audioae.train.signals import StopRequest


def test_stop_signals_are_recorded_and_the_previous_requeue_handler_runs_after_saving():
    calls = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    try:
        with StopRequest() as stop:
            os.kill(os.getpid(), signal.SIGUSR2)  # submitit's time-out signal
            os.kill(os.getpid(), signal.SIGTERM)  # SLURM's, later: no abort of the save
            assert stop.received == [signal.SIGUSR2, signal.SIGTERM] and stop.name == "SIGUSR2"
            assert calls == []  # submitit's requeue waits for the checkpoint
        stop.forward()
        assert calls == [signal.SIGUSR2]
        assert signal.getsignal(signal.SIGTERM) is not stop._handle  # handlers restored
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_forward_without_a_python_handler_or_the_signal_does_nothing():
    with StopRequest() as stop:  # SIGUSR2's default action (terminate) is not called
        os.kill(os.getpid(), signal.SIGUSR2)
    stop.forward()
    with StopRequest() as stop:
        pass
    stop.forward()
    assert stop.signal is None


def test_a_second_ctrl_c_stops_at_once():
    with StopRequest() as stop, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.name == "SIGINT"
        os.kill(os.getpid(), signal.SIGINT)
