"""Wasserstein bottleneck: MMD by hand, training-only penalty, tanh, noise channels."""

import math

import pytest
import torch

from audioae.bottlenecks.wasserstein import Wasserstein, compute_mmd
from audioae.build import build_autoencoder
from conftest import compose_train


def _kernel(xs, ys):
    """mean_{i,j} exp(-mean_c (x_i - y_j)_c^2 / C), the reference's formula, in plain Python."""
    dim = len(xs[0])
    total = 0.0
    for x in xs:
        for y in ys:
            total += math.exp(-sum((a - b) ** 2 for a, b in zip(x, y)) / dim / dim)
    return total / (len(xs) * len(ys))


def test_mmd_matches_a_hand_computation():
    # B = 2, C = 2, L = 2: four latent vectors of two channels
    latents = torch.tensor([[[0.5, -1.0], [2.0, 0.0]], [[0.1, 0.3], [-0.7, 1.5]]])
    torch.manual_seed(3)
    got = compute_mmd(latents)
    torch.manual_seed(3)
    noise = torch.randn(4, 2).tolist()  # what randn_like draws for the (B * L, C) view
    z = latents.transpose(1, 2).reshape(4, 2).tolist()  # frame-major: item 0 frame 0, frame 1...
    assert z[1] == [-1.0, 0.0]
    want = _kernel(z, z) + _kernel(noise, noise) - 2 * _kernel(z, noise)
    assert got.item() == pytest.approx(want, rel=1e-6, abs=1e-7)


def test_mmd_only_while_training():
    b = Wasserstein(latent_dim=3)
    x = torch.randn(2, 3, 5, requires_grad=True)
    out = b.train().encode(x)
    assert set(out.losses) == {"mmd"} and out.losses["mmd"].dim() == 0
    out.losses["mmd"].backward()
    assert x.grad.abs().sum() > 0
    assert b.eval().encode(x).losses == {}
    assert b.loss_names == ("mmd",)


def test_bypass_reports_zero():
    out = Wasserstein(latent_dim=3, bypass_mmd=True).train().encode(torch.randn(2, 3, 5))
    assert out.losses["mmd"].item() == 0.0


def test_tanh_clips_latents_but_mmd_sees_the_raw_values():
    x = torch.randn(2, 3, 5) * 20
    torch.manual_seed(0)
    out = Wasserstein(latent_dim=3, use_tanh=True, tanh_scale=5.0).train().encode(x)
    torch.manual_seed(0)
    raw = compute_mmd(x)
    torch.testing.assert_close(out.latents, torch.tanh(x / 5.0) * 5.0)
    torch.testing.assert_close(out.losses["mmd"], raw)


def test_noise_channels_widen_the_decoder_input():
    b = Wasserstein(latent_dim=3, noise_augment_dim=2)
    assert (b.in_channels, b.out_channels) == (3, 5)
    z = torch.randn(2, 3, 7)
    y = b.decode(z)
    assert y.shape == (2, 5, 7)
    torch.testing.assert_close(y[:, :3], z)
    cfg = compose_train(
        "experiment=smoke", "bottleneck=wasserstein", "bottleneck.noise_augment_dim=2"
    )
    model = build_autoencoder(cfg)
    assert model.decoder.latent_dim == cfg.latent_dim + 2
    x = torch.randn(2, cfg.in_channels, cfg.sample_size)
    assert model(x)[0].shape == x.shape
