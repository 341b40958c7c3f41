import math

from audioae.train.scalars import Averages, Throughput


def test_each_scalar_is_averaged_over_the_steps_that_produced_it():
    averages = Averages()
    averages.add({"loss/total": 4.0, "grad_norm/generator": 1.0})  # a generator step
    averages.add({"loss/adv/disc": 2.0, "grad_norm/discriminator": 3.0})  # a discriminator step
    averages.add({"loss/total": 6.0, "grad_norm/generator": 2.0})
    assert averages.pop() == {
        "loss/total": 5.0,
        "grad_norm/generator": 1.5,
        "loss/adv/disc": 2.0,
        "grad_norm/discriminator": 3.0,
    }
    assert averages.pop() == {}  # starts over after each log point
    averages.add({"loss/total": 1.0})
    averages.add({"loss/total": float("nan")})  # a skipped step shows in its interval
    assert math.isnan(averages.pop()["loss/total"])


def test_throughput_is_audio_per_step_over_the_mean_step_time():
    perf = Throughput(audio_per_step=0.5)
    assert perf.pop() == {}
    perf.add(step_s=0.2, wait_s=0.05)
    perf.add(step_s=0.3, wait_s=0.15)
    assert perf.pop() == {
        "perf/step_s": 0.25,
        "perf/data_wait_s": 0.1,
        "perf/audio_s_per_s": 2.0,
    }
    assert perf.pop() == {}
