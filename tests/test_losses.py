from __future__ import annotations

import pytest
import torch

from audioae.errors import ConfigError
from audioae.losses.time import TimeDomain
from audioae.losses.weighting import check_weights, flatten, unflatten, weighted_sum


def test_time_losses_by_hand():
    recon = torch.tensor([[[1.0, -1.0, 0.5]]])
    real = torch.tensor([[[0.0, 0.0, 0.0]]])
    out = TimeDomain()(recon, real)
    assert out["time/l1"].item() == pytest.approx(2.5 / 3)
    assert out["time/l2"].item() == pytest.approx(2.25 / 3)


def test_weighted_sum_and_log_only():
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(3.0), "c": torch.tensor(100.0)}
    total = weighted_sum(losses, {"a": 0.5, "b": 2.0, "c": 0.0})
    assert total.item() == pytest.approx(7.0)


def test_unknown_weight_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="spec/mrsft"):
        check_weights({"spec/mrsft": 1.0}, ["spec/mrstft", "time/l1"], "loss.weights")
    # a zero weight of a term a config removed (loss.terms.mel: null) optimises nothing: allowed
    check_weights({"spec/mrstft": 1.0, "spec/mel": 0.0}, ["spec/mrstft"], "loss.weights")


def test_a_null_term_is_not_computed(tmp_path):
    """The default computes the mel term; `loss.terms.mel=null` with its weight 0 removes it (as
    the converted stable-audio-tools presets do), and a weight without its term is an error."""
    from audioae.train.loop import train
    from conftest import compose_train, scalars

    base = ["experiment=smoke", "trainer.max_steps=1", "trainer.demo_every=0"]
    train(compose_train(*base), tmp_path / "with")
    assert scalars(tmp_path / "with", "loss/spec/mel")[1] > 0
    train(compose_train(*base, "loss.terms.mel=null", "loss.weights.spec.mel=0"), tmp_path / "w/o")
    with pytest.raises(KeyError):  # no such scalar was logged
        scalars(tmp_path / "w/o", "loss/spec/mel")
    assert scalars(tmp_path / "w/o", "loss/spec/mrstft")[1] > 0
    with pytest.raises(ConfigError, match="spec/mel"):
        train(compose_train(*base, "loss.terms.mel=null"), tmp_path / "bad")


def test_nested_weight_keys_flatten_to_loss_names():
    from audioae.losses.weighting import flatten

    weights = {"spec": {"mrstft": 1.0}, "adv": {"gen": 0.1, "feat": 5}, "kl": 1e-4}
    assert flatten(weights) == {"spec/mrstft": 1.0, "adv/gen": 0.1, "adv/feat": 5.0, "kl": 1e-4}


def test_unflatten_is_the_inverse_of_flatten():
    flat = {"spec/mrstft": 1.0, "adv/gen": 0.1, "vq/commitment_loss": 0.25, "kl": 1e-4}
    tree = unflatten(flat)
    assert tree == {"spec": {"mrstft": 1.0}, "adv": {"gen": 0.1}, "vq": {"commitment_loss": 0.25},
                    "kl": 1e-4}  # fmt: skip
    assert flatten(tree) == flat
