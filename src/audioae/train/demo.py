"""Demos: reconstruct a fixed set of held-out clips, write WAVs, log audio and mel images."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf
import torch
import torchaudio
from torch import Tensor
from torch.utils.data import Dataset
from torch.utils.tensorboard import SummaryWriter

from audioae import runs
from audioae.autoencoder import AudioAutoencoder


def demo_clips(held: Dataset, count: int) -> Tensor:
    """The same `count` clips at every demo, items 0, 1, ... of the held-out data
    (train/validate.py: `held_out_data`): (count, C, T)."""
    return torch.stack([held[i] for i in range(count)])


def mel_image(real: Tensor, fake: Tensor, sample_rate: int) -> Tensor:
    """Real (top) over reconstructed (bottom) log-mel spectrogram of the first channel,
    as a (1, H, W) image in [0, 1] (80 dB range)."""
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate, n_fft=1024, hop_length=256, n_mels=80, power=2.0
    ).to(real.device)
    spec = torch.cat([mel(real[0]), mel(fake[0])], dim=0)  # (2 * n_mels, frames)
    db = 10 * torch.log10(spec.clamp(min=1e-10))
    img = ((db - db.max() + 80.0) / 80.0).clamp(0, 1)
    return img.flip(0).unsqueeze(0)  # low frequencies at the bottom of each half


@torch.no_grad()
def write_demo(
    model: AudioAutoencoder, clips: Tensor, step: int, run_dir: Path, writer: SummaryWriter | None
) -> Path:
    """Reconstruct `clips` (B, C, T) with `model`; write demos/step_N/{i}_real.wav and
    {i}_recon.wav; log audio and mel images to TensorBoard. Returns the demo folder."""
    was_training = model.training
    model.eval()
    inputs, clips = model.inputs_and_targets(clips.to(next(model.parameters()).device))
    fake, _ = model(inputs, sample=False)
    model.train(was_training)
    fake = fake.float().clamp(-1, 1).cpu()
    out = runs.demo_dir(run_dir, step)
    out.mkdir(parents=True, exist_ok=True)
    sr = model.sample_rate
    for i, (real, recon) in enumerate(zip(clips.cpu(), fake)):
        sf.write(out / f"{i}_real.wav", real.T.numpy(), sr, subtype="PCM_16")
        sf.write(out / f"{i}_recon.wav", recon.T.numpy(), sr, subtype="PCM_16")
        if writer is not None:
            # TensorBoard audio is mono: log the first channel
            writer.add_audio(f"demo/{i}_real", real[0:1].T, step, sample_rate=sr)
            writer.add_audio(f"demo/{i}_recon", recon[0:1].T, step, sample_rate=sr)
            writer.add_image(f"demo/{i}_mel_real_vs_recon", mel_image(real, recon, sr), step)
    return out
