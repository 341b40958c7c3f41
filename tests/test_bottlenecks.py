from __future__ import annotations

import math

import pytest
import torch

from audioae.bottlenecks.tanh import Tanh
from audioae.bottlenecks.vae import VAE


def test_vae_kl_matches_hand_computation():
    # one item, two channels (mean; scale), one frame: D = 1, L = 1
    x = torch.tensor([[[0.5], [0.0]]])
    std = math.log(2.0) + 1e-4  # softplus(0) + 1e-4
    var = std**2
    expected = 0.5**2 + var - math.log(var) - 1  # no factor 1/2, summed over channels
    out = VAE(latent_dim=1).encode(x, sample=False)
    assert out.losses["kl"].item() == pytest.approx(expected, rel=1e-6)
    assert out.latents.item() == 0.5  # deterministic mode returns the mean


def test_vae_kl_sums_channels_and_averages_batch_and_time():
    torch.manual_seed(0)
    x = torch.randn(3, 8, 5)
    mean, scale = x[:, :4], x[:, 4:]
    var = (torch.nn.functional.softplus(scale) + 1e-4) ** 2
    per_frame = (mean**2 + var - var.log() - 1).sum(dim=1)  # (3, 5)
    out = VAE(latent_dim=4).encode(x)
    assert out.losses["kl"].item() == pytest.approx(per_frame.mean().item(), rel=1e-6)
    assert out.latents.shape == (3, 4, 5)


def test_vae_sampling_draws_noise_with_the_right_std():
    x = torch.zeros(1, 2, 200_000)  # mean 0, std softplus(0) + 1e-4
    z = VAE(latent_dim=1).encode(x).latents
    assert z.std().item() == pytest.approx(math.log(2.0) + 1e-4, rel=0.01)


def test_vae_widths():
    vae = VAE(latent_dim=16)
    assert (vae.in_channels, vae.out_channels) == (32, 16)


def test_tanh_scale():
    out = Tanh(latent_dim=1, scale=2.0).encode(torch.tensor([[[2.0]]]))
    assert out.latents.item() == pytest.approx(math.tanh(1.0) * 2.0)
    assert out.losses == {}


@pytest.mark.parametrize(
    "name, discrete",
    [
        *[(name, False) for name in ("vae", "tanh", "wasserstein", "l2_norm")],
        *[(name, True) for name in ("rvq", "rvq_vae", "fsq", "dac_rvq", "dac_rvq_vae")],
    ],
)
def test_codes_are_a_field_of_the_result_and_nothing_unread_is_returned(name, discrete):
    """A discrete bottleneck's codes are `result.codes` (B, Q, L) int64, a continuous one's
    None; no extras["codes"] or extras["mean"] (read by nobody)."""
    from audioae.build import build
    from conftest import compose_train

    bottleneck = build(compose_train("experiment=smoke", f"bottleneck={name}").bottleneck, name)
    result = bottleneck.encode(torch.randn(2, bottleneck.in_channels, 5))
    assert bottleneck.is_discrete == discrete
    if discrete:
        assert result.codes.dtype == torch.int64 and result.codes.shape[::2] == (2, 5)
    else:
        assert result.codes is None
    assert "codes" not in result.extras and "mean" not in result.extras


def test_vae_init_std_sets_the_encoder_output_bias_of_the_scale_channels():
    from audioae.build import build_autoencoder
    from conftest import compose_train

    def model(*overrides):
        torch.manual_seed(0)
        return build_autoencoder(compose_train("experiment=smoke", *overrides))

    ref, init = model("bottleneck.init_std=null"), model()  # the default: 0.02
    latent = init.latent_dim
    conv = init.encoder.layers[-1]  # Oobleck's output convolution: mean channels, then scale
    assert conv.out_channels == 2 * latent
    # softplus(bias) + 1e-4 = 0.02 on the scale channels; everything else as without it
    std = torch.nn.functional.softplus(conv.bias[latent:]) + 1e-4
    assert torch.allclose(std, torch.full_like(std, 0.02), rtol=1e-5)
    changed = {k for k, v in init.state_dict().items() if not torch.equal(v, ref.state_dict()[k])}
    assert changed == {f"encoder.layers.{len(init.encoder.layers) - 1}.bias"}
    assert torch.equal(conv.bias[:latent], ref.encoder.layers[-1].bias[:latent])
    # the posterior std of real input starts near 0.02 (the weights' part is small), not 0.69
    torch.manual_seed(1)
    x = torch.randn(2, 2, 8192) * 0.1
    with torch.no_grad():
        scale = init.pre_bottleneck(x)[:, latent:]
        ref_scale = ref.pre_bottleneck(x)[:, latent:]
    assert (torch.nn.functional.softplus(scale) + 1e-4).median().item() == pytest.approx(
        0.02, rel=0.2
    )
    assert (torch.nn.functional.softplus(ref_scale) + 1e-4).median().item() == pytest.approx(
        math.log(2), rel=0.1
    )


def test_vae_init_std_out_of_range_is_a_config_error():
    from audioae.errors import ConfigError

    with pytest.raises(ConfigError, match=r"bottleneck\.init_std"):
        VAE(latent_dim=4, init_std=0.0)


@pytest.mark.parametrize("name", ["rvq_vae", "dac_rvq_vae"])
def test_quantized_vae_init_std_sets_the_same_bias(name):
    from audioae.build import build_autoencoder
    from conftest import compose_train

    def model(*overrides):
        torch.manual_seed(0)
        return build_autoencoder(
            compose_train("experiment=smoke", f"bottleneck={name}", *overrides)
        )

    ref, init = model(), model("bottleneck.init_std=0.05")  # the default: null (its own init)
    latent = init.latent_dim
    conv = init.encoder.layers[-1]
    std = torch.nn.functional.softplus(conv.bias[latent:]) + 1e-4
    assert torch.allclose(std, torch.full_like(std, 0.05), rtol=1e-5)
    changed = {k for k, v in init.state_dict().items() if not torch.equal(v, ref.state_dict()[k])}
    assert changed == {f"encoder.layers.{len(init.encoder.layers) - 1}.bias"}
