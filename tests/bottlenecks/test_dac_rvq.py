"""DAC residual VQ bottlenecks: losses as the reference, gradients, quantize_on_decode, tokens."""

import pytest
import torch

from audioae.bottlenecks.dac_rvq import DACRVQ, DACRVQVAE
from audioae.build import build_autoencoder
from conftest import compose_train


def _dac(**kw) -> DACRVQ:
    return DACRVQ(
        **{"latent_dim": 6, "n_codebooks": 3, "codebook_size": 16, "codebook_dim": 2, **kw}
    )


def test_layout_losses_and_extras():
    torch.manual_seed(0)
    b = _dac().train()
    x = torch.randn(2, 6, 7)
    out = b.encode(x)
    assert out.latents.shape == (2, 6, 7)
    codes = out.codes
    assert codes.shape == (2, 3, 7) and codes.dtype == torch.int64
    assert out.extras["pre_quantizer"] is x
    assert out.extras["projected_latents"].shape == (2, 3 * 2, 7)
    assert {"usage/q2", "perplexity/q2"} <= set(out.extras)
    # the library's summed losses, divided by n_codebooks as in stable-audio-tools
    z, _, _, commitment, codebook = b.quantizer(x)
    torch.testing.assert_close(out.losses["vq/commitment_loss"], commitment / 3)
    torch.testing.assert_close(out.losses["vq/codebook_loss"], codebook / 3)
    torch.testing.assert_close(out.latents, z)
    assert (b.is_discrete, b.num_quantizers, b.codebook_size) == (True, 3, 16)


def test_straight_through_gradients_reach_the_input_through_every_quantizer():
    b = _dac().train()
    x = torch.randn(2, 6, 7, requires_grad=True)
    b.encode(x).latents.sum().backward()  # reconstruction path only, no VQ losses
    assert x.grad.abs().min() > 0
    for q in b.quantizer.quantizers:
        assert q.in_proj.weight_v.grad.abs().sum() > 0  # reached only through the STE
        assert q.codebook.weight.grad is None or q.codebook.weight.grad.abs().sum() == 0


def test_codebooks_learn_from_the_codebook_loss():
    b = _dac().train()
    b.encode(torch.randn(2, 6, 7)).losses["vq/codebook_loss"].backward()
    for q in b.quantizer.quantizers:
        assert q.codebook.weight.grad.abs().sum() > 0


def test_quantize_on_decode_keeps_latents_continuous_and_still_trains_the_codebooks():
    torch.manual_seed(0)
    b = _dac(quantize_on_decode=True).train()
    x = torch.randn(2, 6, 7, requires_grad=True)
    out = b.encode(x)
    assert out.latents is x  # not a tuple (the reference bug), the pre-quantizer values
    assert out.codes.shape == (2, 3, 7)
    assert set(out.losses) == {"vq/commitment_loss", "vq/codebook_loss"}
    out.losses["vq/codebook_loss"].backward(retain_graph=True)
    assert b.quantizer.quantizers[0].codebook.weight.grad.abs().sum() > 0
    b.decode(out.latents).sum().backward()
    assert x.grad.abs().min() > 0
    b.eval()
    with torch.no_grad():
        torch.testing.assert_close(b.decode(x), b.quantizer(x)[0])
        torch.testing.assert_close(b.encode_tokens(x), b.quantizer(x)[1])
    with pytest.raises(ValueError, match="quantize_on_decode"):
        b.decode_tokens(b.encode_tokens(x))


def test_tokens_round_trip_in_eval_mode():
    b = _dac().eval()
    x = torch.randn(2, 6, 7)
    codes = b.encode_tokens(x)
    assert codes.shape == (2, 3, 7) and codes.dtype == torch.int64
    torch.testing.assert_close(b.decode_tokens(codes), b.encode(x).latents, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["dac_rvq", "dac_rvq_vae"])
def test_autoencoder_tokens_equal_decode_of_encode(name):
    cfg = compose_train("experiment=smoke", f"bottleneck={name}")
    model = build_autoencoder(cfg).eval()
    audio = torch.randn(2, cfg.in_channels, cfg.sample_size)
    with torch.no_grad():
        codes = model.encode_tokens(audio)
        assert codes.shape == (2, 9, cfg.sample_size // model.downsampling_ratio)
        want = model.decode(model.encode(audio, sample=False).latents)
        torch.testing.assert_close(model.decode_tokens(codes), want, rtol=0, atol=1e-6)


def test_noise_channels_widen_the_decoder_input():
    b = _dac(noise_augment_dim=2)
    assert (b.in_channels, b.out_channels) == (6, 8)
    assert b.decode(torch.randn(2, 6, 7)).shape == (2, 8, 7)
    cfg = compose_train("experiment=smoke", "bottleneck=dac_rvq", "bottleneck.noise_augment_dim=3")
    assert build_autoencoder(cfg).decoder.latent_dim == cfg.latent_dim + 3


def test_dac_rvq_vae_samples_then_quantizes():
    b = DACRVQVAE(latent_dim=6, n_codebooks=2, codebook_size=16, codebook_dim=2)
    assert (b.in_channels, b.out_channels) == (12, 6)
    x = torch.randn(2, 12, 7)
    out = b.train().encode(x)
    assert set(out.losses) == {"kl", "vq/commitment_loss", "vq/codebook_loss"}
    mean = x[:, :6]
    assert not torch.equal(out.extras["pre_quantizer"], mean)  # the sample
    b.eval()
    torch.testing.assert_close(b.encode(x, sample=False).extras["pre_quantizer"], mean)
    torch.testing.assert_close(b.encode_tokens(x), b.encode(x, sample=False).codes)


def test_per_codebook_dims_and_reference_keys():
    b = _dac(codebook_dim=[2, 3, 4])
    assert b.encode(torch.randn(1, 6, 5)).extras["projected_latents"].shape == (1, 9, 5)
    keys = set(b.state_dict())
    assert "quantizer.quantizers.2.in_proj.weight_v" in keys
    assert "quantizer.quantizers.2.codebook.weight" in keys
