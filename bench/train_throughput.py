"""Training throughput: optimisation steps per second and audio seconds per second.

    python bench/train_throughput.py               # smoke, default (small), SA2.0 architecture
    python bench/train_throughput.py --configs default --steps 10 --batch 2 -- loss=mrstft_gan
    python bench/train_throughput.py --configs sa2 --batch 8 --precision bf16   # on a GPU
    python bench/train_throughput.py --configs sa2 --batch 8 --precision bf16 --compile --flops

Each config is timed in-process with the real training step (audioae.train.loop.Training.step,
as audioae-train runs it: train_step and the EMA update),
after warm-up steps, on the GAN schedule of the config (`loss=mrstft_gan` by default, so
generator and discriminator steps alternate). A "batch" is one optimisation step of either
network; audio seconds count the real audio the step consumed. `--compile` sets
`trainer.compile=true` (torch.compile of both networks' forward passes; the warm-up steps
compile, so give it at least 2 of them, one of each kind).

Peak memory: torch.cuda.max_memory_allocated over the timed steps on a GPU, the process's peak
resident memory on a CPU. `--flops`: the model FLOPs of one step, counted by
torch.utils.flop_counter.FlopCounterMode over one generator and one discriminator step of an
eager copy built first (forward and backward, matmuls and convolutions: what the config asks
for, not what an implementation spends), their mean per step; MFU = FLOPs/step x steps/s over
`--peak-tflops` (989: the H100/H200 SXM dense bf16 peak, NVIDIA's datasheet figure; the TF32
dense peak is half of it, 494).
"""

from __future__ import annotations

import argparse
import gc
import platform
import resource
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
H200_BF16_TFLOPS = 989.0


def step_flops(cfg, acc: Accelerator, real: torch.Tensor) -> float:
    """Mean model FLOPs of one G and one D step (FlopCounterMode, eager, on acc's device)."""
    from torch.utils.flop_counter import FlopCounterMode

    eager = cfg.copy()
    eager.trainer.compile = False
    training = build_training(eager, acc)
    counts = []
    for step in range(2):  # the schedule's first generator and discriminator steps
        with FlopCounterMode(display=False) as counter:
            training.step(step, [real], acc)
        counts.append(counter.get_total_flops())
    del training
    gc.collect()
    if acc.device.type == "cuda":
        torch.cuda.empty_cache()
    return sum(counts) / len(counts)


def measure(
    name: str,
    overrides: list[str],
    batch: int,
    steps: int,
    warmup: int,
    precision: str,
    compiled: bool = False,
    flops: bool = False,
    peak_tflops: float = H200_BF16_TFLOPS,
) -> dict:
    with initialize_config_dir(str(config_dir()), version_base=None):
        extra = ["trainer.compile=true"] if compiled else []
        cfg = compose(
            "train",
            overrides=[*CONFIGS[name], f"trainer.batch_size={batch}", *extra, *overrides],
        )
    torch.manual_seed(0)
    acc = Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available())
    data = instantiate(cfg.data)
    real = torch.stack([data[i] for i in range(batch)])
    per_step = step_flops(cfg, acc, real) if flops else None
    cuda = acc.device.type == "cuda"
    torch.manual_seed(0)
    training = build_training(cfg, acc)
    with reuse_freed_memory(acc.device):  # as audioae-train's loop
        start = time.perf_counter()
        for step in range(warmup):
            training.step(step, [real], acc)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        warm_s = time.perf_counter() - start
        start = time.perf_counter()
        for step in range(warmup, warmup + steps):
            training.step(step, [real], acc)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    if cuda:
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    params = sum(p.numel() for p in training.gen.module.parameters())
    audio = steps * batch * cfg.sample_size / cfg.sample_rate
    rate = steps / seconds
    return {
        "config": name,
        "params_M": params / 1e6,
        "batch": batch,
        "precision": precision + (" + compile" if compiled else ""),
        "crop_s": cfg.sample_size / cfg.sample_rate,
        "steps_per_s": rate,
        "audio_s_per_s": audio / seconds,
        "warmup_s": warm_s,
        "peak_mb": peak_mb,
        "tflop_per_step": per_step / 1e12 if per_step else None,
        "mfu": per_step * rate / (peak_tflops * 1e12) if per_step else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--configs", default="smoke,default,sa2")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--precision", default="no", choices=["no", "bf16", "fp16"])
    p.add_argument("--compile", action="store_true", help="trainer.compile=true")
    p.add_argument("--flops", action="store_true", help="count model FLOPs per step, and MFU")
    p.add_argument("--peak-tflops", type=float, default=H200_BF16_TFLOPS,
                   help="the device's peak for MFU (%(default)s: H200 dense bf16)")  # fmt: skip
    p.add_argument("overrides", nargs="*", default=["loss=mrstft_gan"])
    args = p.parse_args()
    rows = [
        measure(
            c,
            args.overrides,
            args.batch,
            args.steps,
            args.warmup,
            args.precision,
            args.compile,
            args.flops,
            args.peak_tflops,
        )
        for c in args.configs.split(",")
    ]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor()
    print(
        f"# {date.today()} {platform.node()} {device or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"# {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print(
        "| config | params (M) | batch | precision | crop (s) | steps/s | audio s/s "
        "| warm-up s | peak MB | TFLOP/step | MFU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        tflop = f"{r['tflop_per_step']:.3f}" if r["tflop_per_step"] else "-"
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        print(
            f"| {r['config']} | {r['params_M']:.1f} | {r['batch']} | {r['precision']} "
            f"| {r['crop_s']:.2f} | {r['steps_per_s']:.3f} | {r['audio_s_per_s']:.3f} "
            f"| {r['warmup_s']:.1f} | {r['peak_mb']:.0f} | {tflop} | {mfu} |"
        )


if __name__ == "__main__":
    main()
