"""DAC encoder/decoder: reference (stable-audio-tools) key layout, sizes and shapes."""

import pytest
import torch
from dac.model.dac import Decoder, Encoder
from dac.nn.layers import WNConv1d
from torch import nn

from audioae.build import build_autoencoder
from audioae.nets.dac import DACDecoder, DACEncoder
from conftest import compose_train
from nets.nets_helpers import assert_deepcopy_trains_apart


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _randomise(module: nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3 + p)


def _reference_pair(in_ch, out_ch, enc_latent, dec_latent, d_model, strides, channels, rates):
    """The modules stable-audio-tools builds (DACEncoderWrapper / DACDecoderWrapper, §2.4),
    put together by hand from the DAC library, as an autoencoder with their attribute names."""
    width = d_model * 2 ** len(strides)
    enc = nn.Module()
    enc.encoder = Encoder(d_model=d_model, strides=list(strides), d_latent=width)
    if in_ch != 1:
        enc.encoder.block[0] = WNConv1d(in_ch, d_model, kernel_size=7, padding=3)
    enc.proj_out = nn.Conv1d(width, enc_latent, kernel_size=1)
    dec = nn.Module()
    dec.decoder = Decoder(dec_latent, channels, list(rates), d_out=out_ch)
    ae = nn.Module()
    ae.encoder, ae.decoder = enc, dec
    return ae


# stable_audio_1_0_vae.json and dac_2048_32_vae.json (/work/shared/sat-configs), with the
# parameter and state-dict tensor counts of the reference's own instantiation.
SAT = [
    (
        "stable_audio_1_0_vae",
        ["io_channels=2", "latent_dim=64", "encoder.d_model=128", "encoder.strides=[4,4,8,8]",
         "decoder.channels=1536", "decoder.rates=[8,8,4,4]", "sample_size=65536"],
        133_431_300,
        240,
    ),
    (
        "dac_2048_32_vae",
        ["io_channels=1", "latent_dim=32", "encoder.d_model=128", "encoder.strides=[4,8,8,8]",
         "decoder.channels=1536", "decoder.rates=[8,8,8,4]", "sample_size=65536"],
        134_592_930,
        240,
    ),
]  # fmt: skip


@pytest.mark.parametrize("name, overrides, n_params, n_tensors", SAT, ids=[s[0] for s in SAT])
def test_sat_configs_parameter_and_tensor_counts(name, overrides, n_params, n_tensors):
    cfg = compose_train("encoder=dac", "bottleneck=vae", *overrides)
    with torch.device("meta"):
        model = build_autoencoder(cfg)
    assert _n_params(model) == n_params
    sd = model.state_dict()
    assert len(sd) == n_tensors
    assert model.encoder.latent_dim == 2 * cfg.latent_dim  # the VAE's mean and scale
    assert "encoder.encoder.block.0.weight_v" in sd
    assert sd["encoder.proj_out.weight"].shape == (2 * cfg.latent_dim, 2048, 1)
    assert "decoder.decoder.model.0.weight_g" in sd
    assert model.downsampling_ratio == (1024 if "1_0" in name else 2048)


def test_reference_state_dict_loads_strictly_and_computes_the_same():
    kw = {"d_model": 4, "strides": [2, 3], "channels": 16, "rates": [3, 2]}
    ref = _reference_pair(2, 2, 16, 8, **kw)
    _randomise(ref)
    cfg = compose_train(
        "experiment=smoke_dac", "bottleneck=vae", "encoder.strides=[2,3]", "decoder.rates=[3,2]",
        "sample_size=60",
    )  # fmt: skip
    model = build_autoencoder(cfg)
    assert set(model.state_dict()) == set(ref.state_dict())
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 2, 60)
    want = ref.encoder.proj_out(ref.encoder.encoder(x))
    torch.testing.assert_close(model.encoder(x), want, rtol=0, atol=0)
    torch.testing.assert_close(model.decoder(want[:, :8]), ref.decoder.decoder(want[:, :8]))
    assert isinstance(model.encoder.proj_out, nn.Conv1d)  # plain, no weight norm
    assert "proj_out.weight_g" not in model.encoder.state_dict()


def test_mono_encoder_keeps_the_library_first_conv():
    enc = DACEncoder(in_channels=1, latent_dim=3, d_model=4, strides=[2])
    assert enc.encoder.block[0].weight_v.shape == (4, 1, 7)
    enc = DACEncoder(in_channels=3, latent_dim=3, d_model=4, strides=[2])
    assert enc.encoder.block[0].weight_v.shape == (4, 3, 7)


@pytest.mark.parametrize("strides, length", [([2, 4], 64), ([3, 5], 45), ([3, 5], 90), ([7], 21)])
def test_shapes_for_odd_strides_and_lengths(strides, length):
    ratio = 1
    for s in strides:
        ratio *= s
    enc = DACEncoder(in_channels=1, latent_dim=5, d_model=4, strides=strides)
    dec = DACDecoder(latent_dim=5, out_channels=2, channels=16, rates=strides[::-1])
    assert enc.downsampling_ratio == dec.upsampling_ratio == ratio
    z = enc(torch.randn(2, 1, length))
    assert z.shape == (2, 5, length // ratio)
    y = dec(z)
    # each odd rate s makes a transposed conv one sample short: L * s - 1
    expected = length // ratio
    for s in strides[::-1]:
        expected = expected * s - (s % 2)
    assert y.shape == (2, 2, expected)
    assert y.abs().max() < 1  # the DAC decoder always ends in tanh


def test_mono_in_stereo_out_through_the_autoencoder():
    cfg = compose_train("experiment=smoke_dac", "in_channels=1", "out_channels=2")
    model = build_autoencoder(cfg)
    x = torch.randn(2, 1, cfg.sample_size)
    y, result = model(x)
    assert y.shape == (2, 2, cfg.sample_size)
    assert result.latents.shape == (2, cfg.latent_dim, cfg.sample_size // 8)


def test_decoder_too_narrow_for_its_rates_is_an_error():
    with pytest.raises(ValueError, match=r"decoder\.channels"):
        DACDecoder(latent_dim=4, out_channels=1, channels=8, rates=[2, 2, 2, 2])


def test_deepcopy_for_ema_after_a_training_step():
    enc = DACEncoder(in_channels=2, latent_dim=4, d_model=4, strides=[2])
    dec = DACDecoder(latent_dim=4, out_channels=2, channels=8, rates=[2])
    x = torch.randn(1, 2, 16)
    dec(enc(x)).sum().backward()  # gradients (and weight-norm caches) in place, as in training
    assert_deepcopy_trains_apart(enc, x)
    assert_deepcopy_trains_apart(dec, enc(x).detach())
