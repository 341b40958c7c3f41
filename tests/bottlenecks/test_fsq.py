"""FSQ bottleneck: token layout with one or more codebooks, straight-through rounding, tokens."""

import pytest
import torch
from vector_quantize_pytorch import finite_scalar_quantization

from audioae.bottlenecks.fsq import FSQ
from audioae.build import build_autoencoder
from conftest import compose_train


@pytest.mark.parametrize("num_codebooks", [1, 2])
def test_codes_are_batch_codebook_frames(num_codebooks):
    # num_codebooks = 1 is the case the reference breaks on
    b = FSQ(latent_dim=6, levels=[8, 5, 5], num_codebooks=num_codebooks)
    out = b.encode(torch.randn(2, 6, 7))
    assert out.latents.shape == (2, 6, 7) and out.losses == {}
    codes = out.codes
    assert codes.shape == (2, num_codebooks, 7) and codes.dtype == torch.int64
    assert codes.min() >= 0 and codes.max() < 200
    assert b.codebook_size == 200 and b.num_quantizers == num_codebooks and b.is_discrete
    assert f"usage/q{num_codebooks - 1}" in out.extras


def test_latents_lie_on_the_grid():
    b = FSQ(latent_dim=3, levels=[7, 5, 3])  # no projection: latent_dim == len(levels)
    assert not b.quantizer.has_projections
    z = b.encode(torch.randn(2, 3, 50) * 3).latents
    for d, levels in enumerate([7, 5, 3]):
        half = levels // 2
        values = set((z[:, d] * half).round().unique().tolist())
        assert values <= set(range(-half, half + 1))
        torch.testing.assert_close(z[:, d] * half, (z[:, d] * half).round())


def test_rounding_is_straight_through(monkeypatch):
    b = FSQ(latent_dim=4, levels=[8, 5, 5, 5])
    x = torch.randn(2, 4, 9) * 2
    weights = torch.randn(2, 4, 9)

    def grad():
        xi = x.clone().requires_grad_(True)
        (b.encode(xi).latents * weights).sum().backward()
        return xi.grad

    quantized, rounded = grad(), b.encode(x).latents
    monkeypatch.setattr(finite_scalar_quantization, "round_ste", lambda z: z)
    assert not torch.equal(b.encode(x).latents, rounded)  # the patch took effect
    # the gradient through rounding equals that of the identity in its place
    torch.testing.assert_close(quantized, grad(), rtol=0, atol=0)
    assert quantized.abs().min() > 0


def test_tokens_round_trip_exactly():
    b = FSQ(latent_dim=6, levels=[8, 5, 5], num_codebooks=2).eval()
    x = torch.randn(2, 6, 7)
    codes = b.encode_tokens(x)
    torch.testing.assert_close(codes, b.encode(x).codes, rtol=0, atol=0)
    torch.testing.assert_close(b.decode_tokens(codes), b.encode(x).latents, rtol=0, atol=1e-6)


def test_autoencoder_tokens_equal_decode_of_encode():
    cfg = compose_train("experiment=smoke", "bottleneck=fsq")
    model = build_autoencoder(cfg).eval()
    audio = torch.randn(2, cfg.in_channels, cfg.sample_size)
    with torch.no_grad():
        codes = model.encode_tokens(audio)
        assert codes.shape == (2, 1, cfg.sample_size // model.downsampling_ratio)
        want = model.decode(model.encode(audio).latents)
        torch.testing.assert_close(model.decode_tokens(codes), want, rtol=0, atol=1e-6)


def test_noise_channels_and_half_precision_input():
    b = FSQ(latent_dim=4, levels=[5, 5, 5, 5], noise_augment_dim=2)
    assert b.out_channels == 6
    x = torch.randn(1, 4, 3, dtype=torch.bfloat16)
    out = b.encode(x)
    assert out.latents.dtype == torch.bfloat16
    assert b.decode(out.latents).shape == (1, 6, 3)


def test_symmetric_levels_of_two():
    b = FSQ(latent_dim=3, levels=[2, 2, 2], preserve_symmetry=True, noise_dropout=0.5)
    assert b.codebook_size == 8
    assert b.train().encode(torch.randn(1, 3, 4)).codes.shape == (1, 1, 4)
