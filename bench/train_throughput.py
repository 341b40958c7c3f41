"""Training throughput: optimisation steps per second and audio seconds per second.

    python bench/train_throughput.py               # smoke, default (small), SA2.0 architecture
    python bench/train_throughput.py --configs default --steps 10 --batch 2 -- loss=mrstft_gan
    python bench/train_throughput.py --configs sa2 --batch 8 --precision bf16   # on a GPU

Each config is timed in-process with the real training step (audioae.train.loop.Training.step,
as audioae-train runs it: train_step and the EMA update),
after warm-up steps, on the GAN schedule of the config (`loss=mrstft_gan` by default, so
generator and discriminator steps alternate). A "batch" is one optimisation step of either
network; audio seconds count the real audio the step consumed.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch
from accelerate import Accelerator
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from audioae.config import config_dir
from audioae.memory import reuse_freed_memory
from audioae.train.loop import build_training

CONFIGS = {
    "smoke": ["experiment=smoke"],
    "default": [],
    "sa2": ["experiment=stable_audio_2_0_vae"],
}


def measure(
    name: str, overrides: list[str], batch: int, steps: int, warmup: int, precision: str
) -> dict:
    with initialize_config_dir(str(config_dir()), version_base=None):
        cfg = compose(
            "train", overrides=[*CONFIGS[name], f"trainer.batch_size={batch}", *overrides]
        )
    torch.manual_seed(0)
    acc = Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available())
    training = build_training(cfg, acc)
    data = instantiate(cfg.data)
    real = torch.stack([data[i] for i in range(batch)])
    with reuse_freed_memory(acc.device):  # as audioae-train's loop
        for step in range(warmup):
            training.step(step, [real], acc)
        if acc.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for step in range(warmup, warmup + steps):
            training.step(step, [real], acc)
        if acc.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    params = sum(p.numel() for p in training.gen.module.parameters())
    audio = steps * batch * cfg.sample_size / cfg.sample_rate
    return {
        "config": name,
        "params_M": params / 1e6,
        "batch": batch,
        "precision": precision,
        "crop_s": cfg.sample_size / cfg.sample_rate,
        "steps_per_s": steps / seconds,
        "audio_s_per_s": audio / seconds,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--configs", default="smoke,default,sa2")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--precision", default="no", choices=["no", "bf16", "fp16"])
    p.add_argument("overrides", nargs="*", default=["loss=mrstft_gan"])
    args = p.parse_args()
    rows = [
        measure(c, args.overrides, args.batch, args.steps, args.warmup, args.precision)
        for c in args.configs.split(",")
    ]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor()
    print(
        f"# {date.today()} {platform.node()} {device or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"# {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print("| config | params (M) | batch | precision | crop (s) | steps/s | audio s/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['config']} | {r['params_M']:.1f} | {r['batch']} | {r['precision']} "
            f"| {r['crop_s']:.2f} "
            f"| {r['steps_per_s']:.3f} | {r['audio_s_per_s']:.3f} |"
        )


if __name__ == "__main__":
    main()
