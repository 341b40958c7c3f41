from __future__ import annotations

import auraloss
import pytest
import torch

from audioae.errors import ConfigError
from audioae.losses.spectral import MultiResolutionSTFT
from audioae.losses.time import TimeDomain
from audioae.losses.weighting import check_weights, weighted_sum

SCALES = dict(fft_sizes=[64, 32], hop_sizes=[16, 8], win_lengths=[64, 32])


def test_time_losses_by_hand():
    recon = torch.tensor([[[1.0, -1.0, 0.5]]])
    real = torch.tensor([[[0.0, 0.0, 0.0]]])
    out = TimeDomain()(recon, real)
    assert out["time/l1"].item() == pytest.approx(2.5 / 3)
    assert out["time/l2"].item() == pytest.approx(2.25 / 3)


def test_spectral_is_zero_for_identical_signals():
    x = torch.randn(2, 1, 512)
    loss = MultiResolutionSTFT(16000, 1, perceptual_weighting=False, **SCALES)(x, x)
    assert loss["spec/mrstft"].item() == pytest.approx(0.0, abs=1e-5)


def test_mono_equals_auraloss_with_target_as_reference():
    torch.manual_seed(0)
    recon, real = torch.randn(2, 1, 512), torch.randn(2, 1, 512)
    ours = MultiResolutionSTFT(16000, 1, perceptual_weighting=True, **SCALES)(recon, real)
    ref = auraloss.freq.MultiResolutionSTFTLoss(
        sample_rate=16000, perceptual_weighting=True, **SCALES
    )(recon, real)
    assert ours["spec/mrstft"].item() == pytest.approx(ref.item(), rel=1e-5)


def test_stereo_is_sum_and_difference_plus_channel_mean():
    torch.manual_seed(0)
    recon, real = torch.randn(2, 2, 512), torch.randn(2, 2, 512)
    ours = MultiResolutionSTFT(16000, 2, perceptual_weighting=False, **SCALES)(recon, real)
    sd = auraloss.freq.SumAndDifferenceSTFTLoss(**SCALES)(recon, real)
    mr = auraloss.freq.MultiResolutionSTFTLoss(**SCALES)
    per_channel = mr(recon.reshape(4, 1, 512), real.reshape(4, 1, 512))
    assert ours["spec/mrstft"].item() == pytest.approx((sd + per_channel).item(), rel=1e-5)


def test_stereo_perceptual_equals_auraloss_values_and_gradients():
    """A-weighting applied once (ours) or inside every resolution (auraloss): same loss."""
    torch.manual_seed(0)
    recon, real = torch.randn(2, 2, 512, dtype=torch.double), torch.randn(2, 2, 512).double()
    recon.requires_grad_()
    ours = MultiResolutionSTFT(16000, 2, perceptual_weighting=True, **SCALES).double()
    sd = auraloss.freq.SumAndDifferenceSTFTLoss(
        sample_rate=16000, perceptual_weighting=True, **SCALES
    ).double()
    mr = auraloss.freq.MultiResolutionSTFTLoss(
        sample_rate=16000, perceptual_weighting=True, **SCALES
    ).double()
    for module in (*sd.modules(), *mr.modules(), *ours.modules()):
        if isinstance(getattr(module, "window", None), torch.Tensor):
            module.window = module.window.double()
    loss = ours(recon, real)["spec/mrstft"]
    ref = sd(recon, real) + mr(recon.reshape(4, 1, 512), real.reshape(4, 1, 512))
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=0)
    grads = [torch.autograd.grad(x, recon)[0] for x in (loss, ref)]
    torch.testing.assert_close(*grads, rtol=1e-9, atol=1e-15)


def test_weighted_sum_and_log_only():
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(3.0), "c": torch.tensor(100.0)}
    total = weighted_sum(losses, {"a": 0.5, "b": 2.0, "c": 0.0})
    assert total.item() == pytest.approx(7.0)


def test_unknown_weight_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="spec/mrsft"):
        check_weights({"spec/mrsft": 1.0}, ["spec/mrstft", "time/l1"], "loss.weights")


def test_nested_weight_keys_flatten_to_loss_names():
    from audioae.losses.weighting import flatten

    weights = {"spec": {"mrstft": 1.0}, "adv": {"gen": 0.1, "feat": 5}, "kl": 1e-4}
    assert flatten(weights) == {"spec/mrstft": 1.0, "adv/gen": 0.1, "adv/feat": 5.0, "kl": 1e-4}
