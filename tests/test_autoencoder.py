"""AudioAutoencoder's channel rule: what the data delivers, what the encoder gets, what the
losses compare with; and two real training steps for models whose in and out channels differ."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from audioae.autoencoder import convert_channels
from audioae.build import build_autoencoder
from audioae.errors import ConfigError
from conftest import compose_train, run_cli, scalars


def test_convert_channels_rule():
    stereo = torch.tensor([[[1.0, 2.0], [3.0, 6.0]]])  # (B=1, C=2, T=2)
    assert convert_channels(stereo, 2) is stereo  # no copy when the counts agree
    assert convert_channels(stereo, 1).tolist() == [[[2.0, 4.0]]]  # the channel mean
    mono = torch.tensor([[1.0, -1.0]])  # (C=1, T=2): any leading dimensions
    assert convert_channels(mono, 3).tolist() == [[1.0, -1.0]] * 3
    wide = torch.arange(8.0).reshape(4, 2)
    assert convert_channels(wide, 2).tolist() == [[0.0, 1.0], [2.0, 3.0]]  # the first two
    with pytest.raises(ValueError, match="2 channels cannot be converted to 4"):
        convert_channels(stereo, 4)


@pytest.mark.parametrize(
    "ins, outs, data, input_is_mean, target_is_mean",
    [(1, 2, 2, True, False), (2, 1, 2, False, True), (1, 1, 1, False, False)],
)
def test_inputs_and_targets(ins, outs, data, input_is_mean, target_is_mean):
    cfg = compose_train("experiment=smoke", f"in_channels={ins}", f"out_channels={outs}")
    assert cfg.data.channels == data  # max(in_channels, out_channels)
    model = build_autoencoder(cfg)
    assert model.data_channels == data
    audio = torch.randn(2, data, cfg.sample_size)
    inputs, targets = model.inputs_and_targets(audio)
    assert inputs.shape == (2, ins, cfg.sample_size) and targets.shape == (2, outs, cfg.sample_size)
    mean = audio.mean(dim=1, keepdim=True)
    torch.testing.assert_close(inputs, mean if input_is_mean else audio, rtol=0, atol=0)
    torch.testing.assert_close(targets, mean if target_is_mean else audio, rtol=0, atol=0)
    fake, _ = model(inputs)
    assert fake.shape == targets.shape


def test_a_pretransform_needs_equal_in_and_out_channels():
    cfg = compose_train("experiment=smoke", "pretransform=wavelet", "in_channels=1")
    with pytest.raises(ConfigError, match="in_channels=1, out_channels=2"):
        build_autoencoder(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("ins, outs", [(1, 2), (2, 1)])
def test_two_training_steps_with_other_output_channels(tmp_path, ins, outs):
    """`audioae-train in_channels=I out_channels=O`: the losses (spectral, discriminator,
    validation) and the demos compare the decoder's O channels with O-channel targets."""
    run = tmp_path / "run"
    run_cli(
        "audioae-train", "experiment=smoke", f"in_channels={ins}", f"out_channels={outs}",
        "loss=mrstft_gan", "trainer.demo_every=2", "trainer.num_demos=1", "trainer.val_every=2",
        "trainer.val_batches=1", f"hydra.run.dir={run}", cwd=tmp_path,
        env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    for tag in ("loss/spec/mrstft", "loss/adv/disc", "val/spec/mrstft", "val/si_sdr"):
        values = scalars(run, tag)
        assert values and all(math.isfinite(v) for v in values.values()), tag
    for name in ("0_real.wav", "0_recon.wav"):
        audio, rate = sf.read(run / "demos" / "step_00000002" / name, always_2d=True)
        assert audio.shape == (2048, outs) and rate == 16000, name
        assert np.abs(audio).max() > 0, name
    if outs == 2:  # the target is the stereo audio itself, not a mono signal copied twice
        real, _ = sf.read(run / "demos" / "step_00000002" / "0_real.wav")
        assert np.abs(real[:, 0] - real[:, 1]).max() > 0.01


def conv_outputs(model, audio):
    """Each weight-normed conv's output in one encode + decode of `audio` (mean latents), copied
    (a residual unit adds its input into its last conv's output in place)."""
    from audioae.nets.weight_norm import weight_norm_hooks

    seen: dict[str, torch.Tensor] = {}
    names = {m: n for n, m in model.named_modules()}
    hooks = [
        m.register_forward_hook(lambda m, _, y: seen.__setitem__(names[m], y.clone()))
        for m, _ in weight_norm_hooks(model)
    ]
    with torch.no_grad():
        decoded = model.decode(model.encode(audio, sample=False).latents)
    for h in hooks:
        h.remove()
    return seen, decoded


def test_data_init_gives_every_conv_unit_outputs_and_the_decoder_the_audio_level():
    """trainer.data_init (Salimans & Kingma's data-dependent init): on the batch it was set
    from, every weight-normed conv's output has zero mean and unit std per channel, the
    decoder's output the audio's std; the state dict is the same; and the decoder's output
    now follows its input, where at PyTorch's init it is the biases' constant."""
    torch.manual_seed(0)
    model = build_autoencoder(compose_train("experiment=smoke")).eval()
    gen = torch.Generator().manual_seed(1)
    audio = 0.1 * torch.randn(4, 2, 4096, generator=gen).cumsum(-1) / 30  # brown-ish noise
    keys = {k: v.shape for k, v in model.state_dict().items()}
    _, before = conv_outputs(model, audio)
    # how far apart the outputs of different crops are, relative to the output
    moved = (before - before.roll(1, dims=0)).std() / before.std()

    model.data_init(audio)
    assert {k: v.shape for k, v in model.state_dict().items()} == keys
    seen, after = conv_outputs(model, audio)
    latent = model.bottleneck.latent_dim
    encoder_out = [n for n in seen if n.startswith("encoder")][-1]
    for name, y in seen.items():
        if name == encoder_out:  # the encoder's output: its scale half is init_std's
            y = y[:, :latent]
        elif name == list(seen)[-1]:  # the decoder's output
            assert y.std((0, 2)) == pytest.approx(audio.std().expand(2), rel=1e-3)
            continue
        if "Transpose" in type(dict(model.named_modules())[name]).__name__:
            assert y.std((0, 2)).pow(2).mean().sqrt().item() == pytest.approx(1.0, rel=1e-3)
        else:
            assert y.std((0, 2)) == pytest.approx(torch.ones(y.shape[1]), rel=1e-3), name
        assert y.mean((0, 2)).abs().max().item() < 1e-4, name
    assert len(seen) > 10
    moved_now = (after - after.roll(1, dims=0)).std() / after.std()
    # measured: 0.027 at PyTorch's init, 1.32 afterwards
    assert moved.item() < 0.05 < 0.5 < moved_now.item()
