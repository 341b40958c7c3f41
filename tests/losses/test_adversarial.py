"""Adversarial objectives against hand computations on tiny tensors."""

import pytest
import torch

from audioae.losses.adversarial import (
    GAN_LOSSES,
    feature_matching,
    hinge_disc,
    hinge_gen,
    lsgan_disc,
    lsgan_gen,
)

FAKE = torch.tensor([-2.0, -0.5, 0.5, 3.0])
REAL = torch.tensor([-1.0, 0.0, 1.5, 3.0])


def test_hinge_disc():
    # relu(1 - real) = [2, 1, 0, 0] -> 0.75; relu(1 + fake) = [0, 0.5, 1.5, 4] -> 1.5
    assert hinge_disc(FAKE, REAL).item() == 2.25


def test_hinge_gen():
    assert hinge_gen(FAKE).item() == -0.25


def test_lsgan_disc():
    # (1 - real)^2 = [4, 1, 0.25, 4] -> 2.3125; fake^2 = [4, 0.25, 0.25, 9] -> 3.375
    assert lsgan_disc(FAKE, REAL).item() == 5.6875


def test_lsgan_gen():
    # (1 - fake)^2 = [9, 2.25, 0.25, 4]
    assert lsgan_gen(FAKE).item() == 3.875


def test_logit_maps_of_any_shape_average_over_all_elements():
    assert hinge_disc(FAKE.reshape(1, 1, 2, 2), REAL.reshape(2, 1, 2)).item() == 2.25


def test_feature_matching_is_the_mean_over_layers_of_the_mean_l1():
    fake = [torch.tensor([[0.0, 1.0], [2.0, 3.0]], requires_grad=True), torch.tensor([2.0, -1.0])]
    real = [torch.ones(2, 2, requires_grad=True), torch.tensor([0.5, 0.5])]
    # layer 1: |diff| = [1, 0, 1, 2] -> 1.0; layer 2: [1.5, 1.5] -> 1.5
    loss = feature_matching(fake, real)
    assert loss.item() == 1.25
    loss.backward()
    assert real[0].grad is None  # real features are detached
    # d/d fake of (1/2) * mean |fake - real| over 4 elements: sign / 8 (0 where equal)
    assert torch.equal(fake[0].grad, torch.tensor([[-1.0, 0.0], [1.0, 1.0]]) / 8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_feature_matching_equals_autograd_on_large_maps(dtype):
    """The fused mean |fake - real| (one function, fewer passes) against autograd's composite."""
    torch.manual_seed(0)
    shapes = [(2, 16, 101, 65), (2, 16, 61, 129), (3, 7)]
    real = [torch.randn(s).to(dtype) for s in shapes]
    fake = [torch.randn(s).to(dtype).requires_grad_() for s in shapes]
    ref_fake = [f.detach().clone().requires_grad_() for f in fake]
    loss = feature_matching(fake, real)
    ref = torch.stack([(r - f).abs().mean() for f, r in zip(ref_fake, real)]).mean()
    (2 * loss).backward()
    (2 * ref).backward()
    assert loss.dtype == ref.dtype
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=0)
    for f, g in zip(fake, ref_fake):
        assert f.grad.dtype == dtype
        torch.testing.assert_close(f.grad, g.grad, rtol=1e-6, atol=0)


def test_feature_matching_rejects_mismatched_layers():
    with pytest.raises(ValueError, match="layer counts"):
        feature_matching([torch.zeros(1)], [])


def test_names():
    assert set(GAN_LOSSES) == {"hinge", "lsgan"}
