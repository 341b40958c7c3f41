"""The recipes of bench/quality.py (experiments/sat_recipe.yaml, recipe.yaml) and the full-size
preset of the recipe train through `audioae-train`, and their schedules do what their comments
say: sat_recipe alternates generator and discriminator steps with the adversary on from step 0;
the recipe trains on reconstruction alone (no discriminator at all) until its adversarial
warmup ends, then updates both networks on every step.

Crops are shortened to two latent frames (4096 samples) so that each preset trains in seconds;
the networks are the presets' own.
"""

from __future__ import annotations

import pytest

from conftest import ON_CPU, compose_train, run_cli, scalars


def train(tmp_path, preset: str, *overrides: str):
    run = tmp_path / preset
    run_cli(
        "audioae-train",
        f"experiment={preset}",
        "sample_size=4096",
        "trainer.batch_size=1",
        "trainer.max_steps=3",
        "trainer.log_every=1",
        "trainer.demo_every=0",
        f"hydra.run.dir={run}",
        *overrides,
        cwd=tmp_path,
        env=ON_CPU,
    )
    assert (run / "checkpoints" / "step_00000003" / "model.safetensors").is_file()
    return run


def test_sat_recipe_alternates_with_the_adversary_from_step_0(tmp_path):
    run = train(tmp_path, "sat_recipe")
    # logged steps count completed updates: the generator runs at steps 0 and 2 (logged 1, 3)
    assert sorted(scalars(run, "grad_norm/generator")) == [1, 3]
    assert sorted(scalars(run, "grad_norm/discriminator")) == [2]
    assert sorted(scalars(run, "loss/adv/gen")) == [1, 3]


@pytest.mark.parametrize("preset", ["recipe", "stable_audio_2_0_vae_recipe"])
def test_recipe_warms_up_without_the_discriminator_then_updates_both(tmp_path, preset):
    cfg = compose_train(f"experiment={preset}")
    assert cfg.trainer.schedule.joint and not cfg.trainer.schedule.disc_during_warmup
    assert cfg.trainer.schedule.warmup_steps > 0 and cfg.loss.weights.time.l1 == 1.0
    assert cfg.bottleneck.init_std == 0.02  # the reference's presets: null (its own init)
    assert compose_train("experiment=sat_recipe").bottleneck.init_std is None
    assert cfg.loss.weights.spec.mel == 1.0 and cfg.loss.terms.mel is not None
    sat = compose_train("experiment=sat_recipe").loss
    assert sat.terms.mel is None and sat.weights.spec.mel == 0  # stable-audio-tools' objective
    overrides = ["trainer.schedule.warmup_steps=1"]  # the adversary from the second step
    if preset != "recipe":  # the full-size networks, at a quarter of their width
        overrides += ["encoder.channels=32", "discriminator.filters=16"]
    run = train(tmp_path, preset, *overrides)
    assert sorted(scalars(run, "grad_norm/generator")) == [1, 2, 3]
    assert sorted(scalars(run, "grad_norm/discriminator")) == [2, 3]
    assert sorted(scalars(run, "loss/adv/gen")) == [2, 3]
    assert all(v > 0 for v in scalars(run, "loss/time/l1").values())
    assert all(v > 0 for v in scalars(run, "loss/spec/mel").values())
