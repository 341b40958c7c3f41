"""SEANet encoder/decoder: reference (stable-audio-tools) key layout, ratio order, shapes."""

import pytest
import torch
from encodec.modules import SEANetDecoder as EncodecDecoder
from encodec.modules import SEANetEncoder as EncodecEncoder
from omegaconf import OmegaConf
from torch import nn

from audioae.build import build_autoencoder
from audioae.nets.seanet import SEANetDecoder, SEANetEncoder
from conftest import compose_train
from nets.nets_helpers import assert_deepcopy_trains_apart

TINY = {"n_filters": 4, "lstm": 1, "dimension": 8}


def _randomise(module: nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1 + p)


def _reference(sat_encoder_ratios: list[int], sat_decoder_ratios: list[int]) -> nn.Module:
    """What stable-audio-tools builds from a `seanet` config (§2.3): the encoder gets the JSON
    ratios reversed, which encodec reverses again; the decoder gets them as written."""
    ae = nn.Module()
    ae.encoder = EncodecEncoder(channels=2, ratios=list(reversed(sat_encoder_ratios)), **TINY)
    ae.decoder = EncodecDecoder(channels=2, ratios=list(sat_decoder_ratios), **TINY)
    return ae


def test_reference_state_dict_loads_strictly_and_computes_the_same():
    # a non-palindromic config: the reference's encoder downsamples by 2 then 3
    ref = _reference([2, 3], [3, 2])
    _randomise(ref)
    cfg = compose_train(
        "experiment=smoke_seanet", "bottleneck=tanh", "latent_dim=8", "encoder.ratios=[3,2]",
        "sample_size=60",
    )  # fmt: skip
    model = build_autoencoder(cfg)
    assert set(model.state_dict()) == set(ref.state_dict())
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 2, 60)
    torch.testing.assert_close(model.encoder(x), ref.encoder(x), rtol=0, atol=0)
    z = torch.randn(2, 8, 10)
    torch.testing.assert_close(model.decoder(z), ref.decoder(z), rtol=0, atol=0)
    keys = model.state_dict()
    assert "encoder.model.0.conv.conv.weight_v" in keys
    assert "decoder.model.0.conv.conv.weight_v" in keys
    assert any(k.startswith("encoder.model.") and ".lstm." in k for k in keys)


def test_ratios_are_in_decoder_order_and_the_callers_list_is_untouched():
    ratios = [3, 2]
    enc = SEANetEncoder(in_channels=1, latent_dim=4, n_filters=2, ratios=ratios, lstm=0)
    dec = SEANetDecoder(latent_dim=4, out_channels=1, n_filters=2, ratios=ratios, lstm=0)
    assert ratios == [3, 2]
    assert enc.ratios == [2, 3]  # downsampling order: the mirror of the decoder
    strides = [m.conv.conv.stride[0] for m in enc.model if hasattr(m, "conv")]
    assert [s for s in strides if s > 1] == [2, 3]
    assert enc.downsampling_ratio == dec.upsampling_ratio == 6
    cfg = OmegaConf.create({"ratios": [3, 2]})
    SEANetEncoder(in_channels=1, latent_dim=4, n_filters=2, ratios=cfg.ratios, lstm=0)
    assert list(cfg.ratios) == [3, 2]


@pytest.mark.parametrize("ratios, length", [([2, 4], 64), ([5, 3], 45), ([5, 3], 47), ([3], 10)])
def test_shapes_for_odd_ratios_and_lengths(ratios, length):
    enc = SEANetEncoder(in_channels=1, latent_dim=5, n_filters=2, ratios=ratios, lstm=1)
    dec = SEANetDecoder(latent_dim=5, out_channels=2, n_filters=2, ratios=ratios, lstm=1)
    ratio = enc.downsampling_ratio
    z = enc(torch.randn(2, 1, length))
    frames = -(-length // ratio)  # encodec pads a partial last frame
    assert z.shape == (2, 5, frames)
    assert dec(z).shape == (2, 2, frames * ratio)


def test_decoder_final_activation():
    dec = SEANetDecoder(
        latent_dim=3, out_channels=1, n_filters=2, ratios=[2], lstm=0, final_activation="Tanh"
    )
    assert isinstance(dec.model[-1], nn.Tanh)
    assert dec(torch.randn(1, 3, 4) * 100).abs().max() <= 1


def test_mono_in_stereo_out_through_the_autoencoder():
    cfg = compose_train("experiment=smoke_seanet", "in_channels=1", "out_channels=2")
    model = build_autoencoder(cfg)
    x = torch.randn(2, 1, cfg.sample_size)
    y, result = model(x)
    assert y.shape == (2, 2, cfg.sample_size)
    assert result.latents.shape == (2, cfg.latent_dim, cfg.sample_size // 8)


def test_decoder_follows_the_encoder_config():
    cfg = compose_train("encoder=seanet", "encoder.n_filters=16", "encoder.ratios=[4,2]")
    assert cfg.decoder.n_filters == 16 and list(cfg.decoder.ratios) == [4, 2]


def test_deepcopy_for_ema_after_a_training_step():
    enc = SEANetEncoder(in_channels=1, latent_dim=4, n_filters=2, ratios=[2], lstm=1)
    dec = SEANetDecoder(latent_dim=4, out_channels=1, n_filters=2, ratios=[2], lstm=1)
    x = torch.randn(1, 1, 16)
    dec(enc(x)).sum().backward()  # gradients (and weight-norm caches) in place, as in training
    assert_deepcopy_trains_apart(enc, x)
    assert_deepcopy_trains_apart(dec, enc(x).detach())


def test_encodec_musicgen_rvq_parameter_and_tensor_counts():
    """encodec_musicgen_rvq.json: encoder and decoder ratios both [4, 4, 5, 8] there, so the
    encoder downsamples 4, 4, 5, 8: here encoder.ratios = [8, 5, 4, 4]. The RVQ codebooks are
    buffers: counted in the tensors (4 per quantizer), not in the parameters."""
    cfg = compose_train(
        "encoder=seanet", "bottleneck=rvq", "io_channels=1", "latent_dim=128",
        "encoder.n_filters=64", "encoder.ratios=[8,5,4,4]", "decoder.ratios=[4,4,5,8]",
        "bottleneck.num_quantizers=4", "bottleneck.codebook_size=2048", "sample_size=32000",
    )  # fmt: skip
    with torch.device("meta"):
        model = build_autoencoder(cfg)
    assert sum(p.numel() for p in model.parameters()) == 53_259_458
    sd = model.state_dict()
    assert len(sd) == 140
    assert sd["bottleneck.quantizer.layers.3._codebook.embed"].shape == (1, 2048, 128)
    assert model.downsampling_ratio == 640
