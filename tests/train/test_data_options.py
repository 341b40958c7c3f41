"""The data options in a real run: a mixture's realised shares in TensorBoard, augmentation."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate

from audioae.train.loop import train
from conftest import compose_train, scalars


@pytest.mark.slow  # a real run: 3 steps
def test_mix_shares_are_logged_and_augment_runs(tmp_path):
    cfg = compose_train(
        "experiment=smoke",
        "data=mix",
        "+data@data.sources.tonal=synthetic",
        "+data@data.sources.other=synthetic",
        "data.sources.other.seed=1",
        "data.weights={tonal:0.75,other:0.25}",
        "augment=sat",
        "trainer.max_steps=3",
        "trainer.log_every=2",
        "trainer.demo_every=0",
        "trainer.checkpoint_every=3",
    )
    train(cfg, tmp_path / "run")
    mixture = instantiate(cfg.data)
    per_step = cfg.trainer.batch_size * cfg.trainer.grad_accum
    for name in ("tonal", "other"):
        logged = scalars(tmp_path / "run", f"data/mix/{name}")
        # log points 1, 2, 3: the draws since the previous one
        expected = {
            step: mixture.proportions(first * per_step, step * per_step)[name]
            for first, step in ((0, 1), (1, 2), (2, 3))
        }
        assert logged == pytest.approx(expected)
