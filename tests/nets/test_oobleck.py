"""Oobleck encoder/decoder: reference state-dict layout, shapes and hand-computed numbers."""

import copy
import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from audioae.nets import oobleck
from audioae.nets.oobleck import (
    Activation1d,
    OobleckDecoder,
    OobleckEncoder,
    ResidualUnit,
    SnakeBeta,
    wn,
)

# stable_audio_2_0_vae.json: the encoder emits mean and scale, hence 128 vs 64.
SA2 = {"channels": 128, "c_mults": [1, 2, 4, 8, 16], "strides": [2, 4, 4, 8, 8], "use_snake": True}


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _randomise(module: nn.Module, seed: int = 0) -> None:
    """Move every parameter off its init so that g != ||v|| and alpha, beta != 0."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3 + p)


def _tiny(use_snake: bool = True, **kwargs) -> tuple[OobleckEncoder, OobleckDecoder]:
    common = {"channels": 4, "c_mults": [1, 2], "strides": [2, 4], "use_snake": use_snake}
    enc = OobleckEncoder(in_channels=2, latent_dim=6, **common, **kwargs)
    dec = OobleckDecoder(out_channels=2, latent_dim=6, final_tanh=False, **common)
    return enc, dec


def test_sa2_parameter_count_and_state_dict_layout():
    with torch.device("meta"):
        enc = OobleckEncoder(in_channels=2, latent_dim=128, **SA2)
        dec = OobleckDecoder(out_channels=2, latent_dim=64, final_tanh=False, **SA2)
    assert _n_params(enc) == 77_989_888
    assert _n_params(dec) == 78_122_626
    assert _n_params(enc) + _n_params(dec) == 156_112_514
    sd = {f"encoder.{k}": v for k, v in enc.state_dict().items()}
    sd |= {f"decoder.{k}": v for k, v in dec.state_dict().items()}
    assert len(sd) == 365
    assert list(sd)[:5] == [
        "encoder.layers.0.bias",
        "encoder.layers.0.weight_g",
        "encoder.layers.0.weight_v",
        "encoder.layers.1.layers.0.layers.0.alpha",
        "encoder.layers.1.layers.0.layers.0.beta",
    ]
    expected = {
        "encoder.layers.0.weight_g": (128, 1, 1),
        "encoder.layers.0.weight_v": (128, 2, 7),
        "encoder.layers.1.layers.2.layers.0.alpha": (128,),
        "encoder.layers.1.layers.2.layers.1.weight_v": (128, 128, 7),
        "encoder.layers.1.layers.0.layers.3.weight_v": (128, 128, 1),
        "encoder.layers.1.layers.3.beta": (128,),
        "encoder.layers.1.layers.4.weight_g": (128, 1, 1),
        "encoder.layers.1.layers.4.weight_v": (128, 128, 4),
        "encoder.layers.2.layers.4.weight_v": (256, 128, 8),
        "encoder.layers.5.layers.4.weight_v": (2048, 1024, 16),
        "encoder.layers.6.alpha": (2048,),
        "encoder.layers.7.weight_g": (128, 1, 1),
        "encoder.layers.7.weight_v": (128, 2048, 3),
        "encoder.layers.7.bias": (128,),
        "decoder.layers.0.weight_g": (2048, 1, 1),
        "decoder.layers.0.weight_v": (2048, 64, 7),
        "decoder.layers.0.bias": (2048,),
        "decoder.layers.1.layers.0.alpha": (2048,),
        "decoder.layers.1.layers.1.weight_g": (2048, 1, 1),  # transposed conv: dim 0 is input
        "decoder.layers.1.layers.1.weight_v": (2048, 1024, 16),
        "decoder.layers.1.layers.1.bias": (1024,),
        "decoder.layers.1.layers.4.layers.3.weight_v": (1024, 1024, 1),
        "decoder.layers.5.layers.1.weight_v": (128, 128, 4),
        "decoder.layers.6.beta": (128,),
        "decoder.layers.7.weight_g": (2, 1, 1),
        "decoder.layers.7.weight_v": (2, 128, 7),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    assert "decoder.layers.7.bias" not in sd
    assert not any(k.startswith("decoder.layers.8") for k in sd)
    assert not any(k.endswith(".weight") for k in sd)
    assert enc.downsampling_ratio == dec.upsampling_ratio == 2048
    assert (enc.in_channels, enc.latent_dim, dec.out_channels, dec.latent_dim) == (2, 128, 2, 64)


@pytest.mark.parametrize(
    ("strides", "frames", "out_len"),
    [
        ([2, 4, 4, 8, 8], 2, 4096),  # ratio 2048
        ([2, 4, 8, 8], 3, 1536),  # ratio 512
        ([3, 5], 4, 56),  # odd strides: (4 * 5 - 1) * 3 - 1, not 60
    ],
)
def test_latent_and_output_lengths(strides, frames, out_len):
    kw = {"channels": 2, "c_mults": [1] * len(strides), "strides": strides, "latent_dim": 3}
    enc, dec = OobleckEncoder(in_channels=1, **kw), OobleckDecoder(out_channels=1, **kw)
    ratio = math.prod(strides)
    assert enc.downsampling_ratio == dec.upsampling_ratio == ratio
    with torch.no_grad():
        z = enc(torch.randn(2, 1, frames * ratio))
        assert z.shape == (2, 3, frames)
        assert dec(z).shape == (2, 1, out_len)


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
def test_nearest_upsample_layout_and_exact_length_for_odd_strides():
    dec = OobleckDecoder(
        out_channels=1,
        channels=2,
        latent_dim=3,
        c_mults=[1, 2],
        strides=[3, 5],
        use_nearest_upsample=True,
    )
    sd = dec.state_dict()
    assert sd["layers.1.layers.1.1.weight_g"].shape == (2, 1, 1)
    assert sd["layers.1.layers.1.1.weight_v"].shape == (2, 4, 10)  # 4 -> 2 channels, k = 2 * 5
    assert "layers.1.layers.1.1.bias" not in sd
    assert not any(k.startswith("layers.1.layers.1.0") for k in sd)  # nn.Upsample: no params
    with torch.no_grad():
        assert dec(torch.randn(1, 3, 4)).shape == (1, 1, 60)


def test_elu_variant_has_no_activation_keys_and_same_indices():
    for snake_model, elu_model in zip(_tiny(use_snake=True), _tiny(use_snake=False), strict=True):
        snake_keys, elu_keys = set(snake_model.state_dict()), set(elu_model.state_dict())
        assert not any(k.endswith((".alpha", ".beta")) for k in elu_keys)
        assert elu_keys == {k for k in snake_keys if not k.endswith((".alpha", ".beta"))}
        final_act = 3  # index N + 1 in both, N = 2 blocks
        assert isinstance(elu_model.layers[final_act], nn.ELU)
        assert isinstance(snake_model.layers[final_act], SnakeBeta)


def test_snake_beta_formula():
    act = SnakeBeta(2)
    assert act.alpha.shape == act.beta.shape == (2,)
    assert torch.equal(act.alpha, torch.zeros(2))  # exp(0) = 1
    with torch.no_grad():
        act.alpha.copy_(torch.tensor([math.log(2.0), 0.0]))
        act.beta.copy_(torch.tensor([math.log(4.0), 0.0]))
    x = torch.tensor([[[math.pi / 4], [math.pi / 2]]])
    # channel 0: sin(2 * pi/4)^2 / 4 = 0.25; channel 1: sin(pi/2)^2 / 1 = 1
    expected = torch.tensor([[[math.pi / 4 + 0.25], [math.pi / 2 + 1.0]]])
    torch.testing.assert_close(act(x), expected)


def test_weight_norm_conv_is_g_v_over_norm_v():
    conv = wn(nn.Conv1d(2, 1, 1))
    with torch.no_grad():
        conv.weight_v.copy_(torch.tensor([[[3.0], [4.0]]]))  # ||v|| = 5
        conv.weight_g.copy_(torch.tensor([[[10.0]]]))  # weight = [6, 8]
        conv.bias.copy_(torch.tensor([0.5]))
    x = torch.tensor([[[1.0, -1.0], [2.0, 0.0]]])
    torch.testing.assert_close(conv(x), torch.tensor([[[6 + 16 + 0.5, -6 + 0.5]]]))


def test_residual_unit_matches_hand_written_forward():
    unit = ResidualUnit(3, 3, dilation=2, use_snake=True)
    _randomise(unit, seed=1)
    p = dict(unit.named_parameters())

    def snake(x, i):
        a = torch.exp(p[f"layers.{i}.alpha"])[None, :, None]
        b = torch.exp(p[f"layers.{i}.beta"])[None, :, None]
        return x + 1 / (b + 1e-9) * torch.sin(a * x) ** 2

    def weight(i):
        v, g = p[f"layers.{i}.weight_v"], p[f"layers.{i}.weight_g"]
        return g * v / v.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()

    x = torch.randn(2, 3, 20)
    h = F.conv1d(snake(x, 0), weight(1), p["layers.1.bias"], padding=6, dilation=2)
    h = F.conv1d(snake(h, 2), weight(3), p["layers.3.bias"])
    torch.testing.assert_close(unit(x), x + h, rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_strict_and_identical_outputs():
    enc, dec = _tiny()
    _randomise(enc, seed=2)
    _randomise(dec, seed=3)
    buffer = io.BytesIO()
    torch.save({"encoder": enc.state_dict(), "decoder": dec.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert "layers.0.weight_g" in saved["encoder"] and "layers.0.weight" not in saved["encoder"]
    enc2, dec2 = _tiny()
    enc2.load_state_dict(saved["encoder"], strict=True)
    dec2.load_state_dict(saved["decoder"], strict=True)
    x = torch.randn(2, 2, 64)
    with torch.no_grad():
        assert torch.equal(dec2(enc2(x)), dec(enc(x)))
        assert dec(enc(x)).shape == (2, 2, 64)


def test_deepcopy_for_ema_after_a_training_step():
    enc, dec = _tiny()
    _randomise(dec, seed=5)
    model = nn.ModuleDict({"encoder": enc, "decoder": dec})
    x = torch.randn(1, 2, 16)
    dec(enc(x)).sum().backward()  # leaves non-leaf cached `weight` tensors on every conv
    ema = copy.deepcopy(model)
    with torch.no_grad():
        assert torch.equal(ema["decoder"](ema["encoder"](x)), dec(enc(x)))
        ema["decoder"].layers[0].weight_g.mul_(2.0)  # the copy owns its parameters
        assert not torch.equal(ema["decoder"](ema["encoder"](x)), dec(enc(x)))
    assert ema["decoder"].layers[0].weight_g.data_ptr() != dec.layers[0].weight_g.data_ptr()
    copy.deepcopy(ema)  # and copies again
    nn.utils.remove_weight_norm(ema["encoder"].layers[0])  # the hooks survive the copy


def test_gradient_checkpointing_same_output_and_grads(monkeypatch):
    calls = []

    def counting_checkpoint(*args, **kwargs):
        calls.append(kwargs.get("use_reentrant"))
        return torch.utils.checkpoint.checkpoint(*args, **kwargs)

    monkeypatch.setattr(oobleck, "checkpoint", counting_checkpoint)
    plain, _ = _tiny()
    _randomise(plain, seed=4)
    ckpt, _ = _tiny(checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    plain.train()
    ckpt.train()
    x = torch.randn(2, 2, 32)
    outs, grads = [], []
    for model in (plain, ckpt):
        model.zero_grad()
        y = model(x)
        y.pow(2).sum().backward()
        outs.append(y.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert calls == [False] * 6  # 2 blocks x 3 residual units, non-reentrant
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=0)
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-6, atol=1e-7, msg=name)
    ckpt.eval()
    with torch.no_grad():
        ckpt(x)
    assert len(calls) == 6  # never in eval mode


def test_hydra_list_config_arguments():
    omegaconf = pytest.importorskip("omegaconf")
    cfg = omegaconf.OmegaConf.create({"c_mults": [1, 2], "strides": [2, 4]})
    enc = OobleckEncoder(channels=2, latent_dim=3, c_mults=cfg.c_mults, strides=cfg.strides)
    assert enc.downsampling_ratio == 8 and type(enc.downsampling_ratio) is int
    with pytest.raises(ValueError, match="differ in length"):
        OobleckDecoder(c_mults=[1, 2], strides=[2])


def test_antialias_key_layout():
    enc, _ = _tiny(antialias_activation=True)
    dec = OobleckDecoder(
        out_channels=2,
        channels=4,
        latent_dim=6,
        c_mults=[1, 2],
        strides=[2, 4],
        use_snake=True,
        antialias_activation=True,
    )
    enc_keys, dec_keys = set(enc.state_dict()), set(dec.state_dict())
    # Only the final encoder activation is wrapped.
    wrapped = ("act.alpha", "act.beta", "upsample.filter", "downsample.lowpass.filter")
    assert {f"layers.3.{k}" for k in wrapped} <= enc_keys
    assert "layers.1.layers.3.alpha" in enc_keys  # block activation not wrapped
    for p in ("layers.1.layers.0", "layers.2.layers.0", "layers.3"):
        assert {f"{p}.{k}" for k in wrapped} <= dec_keys
    assert "layers.1.layers.2.layers.0.alpha" in dec_keys  # residual units never wrapped
    assert dec.state_dict()["layers.3.upsample.filter"].shape == (1, 1, 12)
    with torch.no_grad():
        assert dec(enc(torch.randn(1, 2, 32))).shape == (1, 2, 32)


def test_antialias_filter_and_passband():
    act = Activation1d(nn.Identity())
    taps = act.upsample.filter.flatten().double().numpy()
    # Kaiser-sinc, cutoff 0.25, half width 0.3, 12 taps; attenuation A > 50, so
    # beta = 0.1102 (A - 8.7)
    atten = 2.285 * 5 * math.pi * 1.2 + 7.95
    t = np.arange(-6, 6) + 0.5
    ref = np.kaiser(12, 0.1102 * (atten - 8.7)) * np.sinc(0.5 * t)
    np.testing.assert_allclose(taps, ref / ref.sum(), rtol=1e-5, atol=1e-7)
    assert torch.equal(act.upsample.filter, act.downsample.lowpass.filter)
    half = [0.0020, 0.0094, -0.0255, -0.0577, 0.1286, 0.4432]  # symmetric
    np.testing.assert_allclose(taps, half + half[::-1], atol=5e-5)
    # A slow sine passes almost unchanged; odd lengths are preserved.
    x = torch.sin(2 * math.pi * 0.02 * torch.arange(201.0)).view(1, 1, -1).repeat(1, 3, 1)
    y = act(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y[..., 10:-10], x[..., 10:-10], rtol=0, atol=2e-2)


@pytest.mark.parametrize("logscale", [True, False])
def test_snake_beta_gradients_match_autograd_on_the_formula(logscale):
    """The hand-written backward of SnakeBeta against autograd on the plain formula."""
    torch.manual_seed(0)
    act = SnakeBeta(3, alpha=0.7, alpha_logscale=logscale).double()
    with torch.no_grad():
        act.alpha.add_(torch.tensor([0.1, -0.2, 0.3], dtype=torch.double))
        act.beta.add_(torch.tensor([-0.1, 0.2, 0.05], dtype=torch.double))
    x = torch.randn(2, 3, 11, dtype=torch.double, requires_grad=True)
    torch.autograd.gradcheck(act, (x,))

    def formula(x):
        a, b = act.alpha[None, :, None], act.beta[None, :, None]
        if logscale:
            a, b = a.exp(), b.exp()
        return x + 1.0 / (b + 1e-9) * torch.sin(x * a) ** 2

    g = torch.randn(2, 3, 11, dtype=torch.double)
    grads = []
    for fn in (act, formula):
        y = fn(x)
        grads.append((y, *torch.autograd.grad(y, (x, act.alpha, act.beta), g)))
    for ours, reference in zip(*grads, strict=True):
        torch.testing.assert_close(ours, reference)
