"""Every discriminator option composes, instantiates, has the expected outputs and routes
gradients as the GAN schedule needs; the base class averages over sub-discriminators."""

from functools import cache

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor, nn

from audioae.build import build
from audioae.discriminators.base import Discriminator
from audioae.discriminators.dac import DACDiscriminator
from audioae.discriminators.encodec import EncodecDiscriminator
from audioae.discriminators.oobleck import OobleckDiscriminator, fold
from audioae.errors import ConfigError
from conftest import compose_train, options

NAMES = options("discriminator")

# Small variants of each option, for the gradient tests.
TINY = {
    "encodec": [
        "discriminator.filters=4",
        "discriminator.n_ffts=[256,128]",
        "discriminator.hop_lengths=[64,32]",
        "discriminator.win_lengths=[256,128]",
    ],
    "dac": ["discriminator.periods=[2,3]", "discriminator.fft_sizes=[256]"],
    "oobleck": ["discriminator.capacity=4", "discriminator.periods=[2,3]"],
}


@cache
def _group_in_defaults() -> bool:
    return "discriminator" in compose_train()


def compose_disc(name: str, *overrides: str) -> DictConfig:
    """The train config with discriminator=NAME, whether or not train.yaml selects one."""
    key = "discriminator" if _group_in_defaults() else "+discriminator"
    return compose_train(f"{key}={name}", "sample_rate=16000", *overrides)


def make(name: str, channels: int, *overrides: str, tiny: bool = False) -> Discriminator:
    extra = TINY[name] if tiny else []
    cfg = compose_disc(name, f"io_channels={channels}", *extra, *overrides)
    return build(cfg.discriminator, "discriminator")


def expected_structure(d: Discriminator) -> tuple[int, list[int], int]:
    """(number of sub-discriminators, feature maps of each, rows per input item)."""
    if isinstance(d, EncodecDiscriminator):
        subs = d.discriminators.discriminators
        return len(subs), [len(s.convs) for s in subs], 1
    if isinstance(d, DACDiscriminator):
        inner = d.discriminator
        n_mpd = sum(type(s).__name__ == "MPD" for s in inner.discriminators)
        n_msd = sum(type(s).__name__ == "MSD" for s in inner.discriminators)
        n_mrd = len(inner.discriminators) - n_mpd - n_msd
        feats = [5] * n_mpd + [6] * n_msd + [5 * 5] * n_mrd
        return len(inner.discriminators), feats, d.channels
    if isinstance(d, OobleckDiscriminator):
        n = len(d.scales) + len(d.periods)
        return n, [4] * n, 1
    raise AssertionError(type(d))


def test_every_option_is_tested():
    assert set(NAMES) == {"encodec", "dac", "oobleck"}


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_option_composes_instantiates_and_has_the_expected_outputs(name, channels):
    d = make(name, channels)
    assert d.names == ("adv/gen", "adv/feat")
    n, feats, rows = expected_structure(d)
    out = d(torch.randn(2, channels, 4096))
    assert len(out) == n
    for (logits, features), n_feats in zip(out, feats, strict=True):
        assert logits.shape[:2] == (2 * rows, 1)
        assert len(features) == n_feats
        assert all(f.shape[0] == 2 * rows and f.dim() == logits.dim() for f in features)


def test_default_discriminator_is_encodec_with_the_model_channels():
    if not _group_in_defaults():
        pytest.skip("train.yaml does not select a discriminator yet")
    cfg = compose_train("io_channels=2")
    assert cfg.discriminator._target_.endswith("EncodecDiscriminator")
    assert cfg.discriminator.in_channels == 2


def test_encodec_stereo_sees_both_channels():
    d = make("encodec", 2, tiny=True)
    first = d.discriminators.discriminators[0].convs[0].conv
    assert first.in_channels == 4  # real and imaginary parts of 2 channels
    out = d(torch.randn(3, 2, 2048))
    assert out[0][0].shape[0] == 3


def test_encodec_defaults_and_key_layout():
    d = make("encodec", 1)
    conv = d.discriminators.discriminators[0].convs[1].conv
    assert conv.stride == (1, 2)
    keys = set(d.state_dict())
    prefix = "discriminators.discriminators.0."
    assert {prefix + "spec_transform.window", prefix + "convs.0.conv.weight"} <= keys
    assert {prefix + f"convs.{j}.conv.weight_g" for j in range(1, 5)} <= keys
    assert prefix + "conv_post.conv.weight_v" in keys


def test_encodec_reference_variant():
    d = make("encodec", 1, "discriminator.stride=[1,1]", "discriminator.weight_norm_first=true")
    disc = d.discriminators.discriminators[0]
    assert disc.convs[1].conv.stride == (1, 1)
    keys = set(d.state_dict())
    assert "discriminators.discriminators.0.convs.0.conv.weight_g" in keys
    _, features = d(torch.randn(1, 1, 4096))[0]
    assert features[-1].shape[-1] == 2048 // 2 + 1  # no frequency downsampling


@pytest.mark.parametrize("name", NAMES)
def test_disc_loss_on_detached_fakes_trains_only_the_discriminator(name):
    torch.manual_seed(0)
    d = make(name, 2, tiny=True)
    generator = nn.Conv1d(2, 2, 1)
    real = torch.randn(2, 2, 2048)
    fake = generator(torch.randn(2, 2, 2048))
    loss = d.disc_loss(fake.detach(), real)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is None for p in generator.parameters())
    grads = [p.grad for p in d.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", NAMES)
def test_gen_loss_reaches_the_generator_only(name):
    torch.manual_seed(0)
    d = make(name, 2, tiny=True)
    generator = nn.Conv1d(2, 2, 1)
    real = torch.randn(2, 2, 2048, requires_grad=True)
    fake = generator(torch.randn(2, 2, 2048))
    losses = d.gen_loss(fake, real)
    assert set(losses) == set(d.names)
    sum(losses.values()).backward()
    assert real.grad is None  # real features are computed without gradient
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())
    # The discriminator is not being updated: no weight gradients computed for it...
    assert all(p.grad is None for p in d.parameters())
    # ...and it is trainable again afterwards.
    assert all(p.requires_grad for p in d.parameters())


def gradients_after_both_losses(d: Discriminator, real: Tensor, noise: Tensor) -> list[Tensor]:
    """The discriminator's and a one-conv generator's gradients after disc_loss and gen_loss."""
    torch.manual_seed(1)
    generator = nn.Conv1d(2, 2, 1)
    fake = generator(noise)
    d.disc_loss(fake.detach(), real).backward()
    sum(d.gen_loss(fake, real).values()).backward()
    return [p.grad.clone() for p in d.parameters()] + [generator.weight.grad.clone()]


@pytest.mark.parametrize("name", NAMES)
def test_checkpointing_changes_nothing_but_memory(name):
    real, noise = torch.randn(2, 2, 2048), torch.randn(2, 2, 2048)
    results = []
    for flag in ("false", "true"):
        torch.manual_seed(0)
        d = make(name, 2, f"discriminator.checkpointing={flag}", tiny=True)
        results.append(gradients_after_both_losses(d, real, noise))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["encodec", "oobleck"])
def test_channels_last_changes_the_layout_not_the_values(name):
    real, noise = torch.randn(2, 2, 2048), torch.randn(2, 2, 2048)
    results = []
    for flag in ("false", "true"):
        torch.manual_seed(0)
        d = make(name, 2, f"discriminator.channels_last={flag}", tiny=True)
        results.append(gradients_after_both_losses(d, real, noise))
        features = [f for _, maps in d(real) for f in maps if f.dim() == 4]
        layouts = {f.is_contiguous(memory_format=torch.channels_last) for f in features}
        assert layouts == {flag == "true"}
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["encodec", "dac"])
def test_stft_discriminators_run_under_bfloat16_autocast(name):
    d = make(name, 1, tiny=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = d.disc_loss(torch.randn(1, 1, 2048), torch.randn(1, 1, 2048))
    assert torch.isfinite(loss)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_loss_is_a_config_error_naming_the_key(name):
    cfg = compose_disc(name, "discriminator.loss=wgan")
    with pytest.raises(ConfigError, match=r"discriminator\.loss"):
        build(cfg.discriminator, "discriminator")


def test_dac_msd_rates_work_and_bad_rates_are_rejected():
    d = make("dac", 2, "discriminator.rates=[1,2]", tiny=True)
    n, feats, _ = expected_structure(d)
    assert n == 2 + 2 + 1 and feats[2:4] == [6, 6]
    out = d(torch.randn(1, 2, 2048))
    assert [len(f) for _, f in out] == feats
    with pytest.raises(ConfigError, match=r"discriminator\.rates"):
        make("dac", 1, "discriminator.rates=[3]")  # 16000 is not a multiple of 3


def test_dac_preprocessing_removes_dc_and_peak_normalises():
    d = make("dac", 1, tiny=True)
    x = torch.tensor([[[1.0, 3.0, 5.0, 7.0]]])
    y = d.discriminator.preprocess(x)
    torch.testing.assert_close(y, torch.tensor([[[-0.8, -0.8 / 3, 0.8 / 3, 0.8]]]))


def test_oobleck_fold_zero_pads_to_whole_periods():
    x = torch.arange(1.0, 8.0).reshape(1, 1, 7)
    assert fold(x, 3).tolist() == [[[[1, 2, 3], [4, 5, 6], [7, 0, 0]]]]
    assert fold(x, 7).shape == (1, 1, 1, 7)


def test_oobleck_period_convs_keep_phases_apart():
    d = make("oobleck", 1, tiny=True)
    conv = d.periods[0].convs[0]
    assert conv.kernel_size == (15, 1) and conv.stride == (4, 1)
    logits, _ = d(torch.randn(1, 1, 2048))[len(d.scales)]
    assert logits.shape[-1] == 2  # the period axis survives


class Stub(Discriminator):
    """Two sub-discriminators: w * x with features [x, 3x], and 2 * w * x with features [x]."""

    def __init__(self, loss: str = "hinge"):
        super().__init__(loss)
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor):
        return [(self.w * x, [self.w * x, 3 * self.w * x]), (2 * self.w * x, [self.w * x])]


FAKE = torch.tensor([-2.0, -0.5, 0.5, 3.0]).reshape(1, 1, 4)
REAL = torch.tensor([-1.0, 0.0, 1.5, 3.0]).reshape(1, 1, 4)


def test_losses_average_over_sub_discriminators():
    d = Stub()
    # hinge D: sub 1 = 0.75 + 1.5; sub 2 (2x): relu(1 - [-2, 0, 3, 6]) -> 1.0,
    # relu(1 + [-4, -1, 1, 6]) -> 2.25
    assert d.disc_loss(FAKE, REAL).item() == (2.25 + 3.25) / 2
    losses = d.gen_loss(FAKE, REAL)
    assert losses["adv/gen"].item() == (-0.25 - 0.5) / 2
    # |real - fake| = [1, 0.5, 1, 0] -> 0.625; sub 1: (0.625 + 3 * 0.625) / 2; sub 2: 0.625
    assert losses["adv/feat"].item() == (1.25 + 0.625) / 2


def test_lsgan_through_the_base_class():
    d = Stub("lsgan")
    # sub 1: 2.3125 + 3.375; sub 2: (1 - [-2, 0, 3, 6])^2 -> 9.75, [16, 1, 1, 36] -> 13.5
    assert d.disc_loss(FAKE, REAL).item() == (5.6875 + 23.25) / 2
    # sub 1: 3.875; sub 2: (1 - [-4, -1, 1, 6])^2 = [25, 4, 0, 25] -> 13.5
    assert d.gen_loss(FAKE, REAL)["adv/gen"].item() == (3.875 + 13.5) / 2


def test_unknown_loss_names_the_key():
    with pytest.raises(ConfigError, match=r"discriminator\.loss='wgan'"):
        Stub("wgan")


def test_instantiate_directly_from_yaml():
    from omegaconf import OmegaConf

    from audioae.config import config_dir

    for name in NAMES:
        node = OmegaConf.load(config_dir() / "discriminator" / f"{name}.yaml")
        root = OmegaConf.create({"out_channels": 1, "sample_rate": 16000, "d": node})
        assert isinstance(instantiate(root.d), Discriminator)
