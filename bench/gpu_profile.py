"""Where a training step's time goes: torch.profiler over a few steps of audioae's real step,
the kernels (GPU) or operators (CPU) that dominate, as a table (issue 33: MFU, and why).

    python bench/gpu_profile.py --config sa2 --batch 8 --precision bf16   # on a GPU
    python bench/gpu_profile.py --config smoke --batch 2 --steps 2        # the dry run

Builds the training as bench/train_throughput.py does (same configs, GAN schedule alternating
G and D), runs --warmup steps, then profiles --steps steps and prints the top --rows entries by
self device time (CPU: self CPU time), with their share of the profiled total.
"""

from __future__ import annotations

import argparse

import torch
from accelerate import Accelerator
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.profiler import ProfilerActivity, profile
from train_throughput import CONFIGS  # bench/, beside this script

from audioae.config import config_dir
from audioae.memory import reuse_freed_memory
from audioae.train.loop import build_training


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="sa2", choices=sorted(CONFIGS))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=4, help="profiled steps (G and D alternate)")
    p.add_argument("--precision", default="bf16", choices=["no", "bf16", "fp16"])
    p.add_argument("--rows", type=int, default=25)
    p.add_argument("overrides", nargs="*", default=["loss=mrstft_gan"])
    args = p.parse_args()
    with initialize_config_dir(str(config_dir()), version_base=None):
        cfg = compose(
            "train",
            overrides=[*CONFIGS[args.config], f"trainer.batch_size={args.batch}", *args.overrides],
        )
    torch.manual_seed(0)
    acc = Accelerator(mixed_precision=args.precision, cpu=not torch.cuda.is_available())
    data = instantiate(cfg.data)
    real = torch.stack([data[i] for i in range(args.batch)])
    training = build_training(cfg, acc)
    cuda = acc.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with reuse_freed_memory(acc.device):
        for step in range(args.warmup):
            training.step(step, [real], acc)
        if cuda:
            torch.cuda.synchronize()
        with profile(activities=activities) as prof:
            for step in range(args.warmup, args.warmup + args.steps):
                training.step(step, [real], acc)
            if cuda:
                torch.cuda.synchronize()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = prof.key_averages()
    total = sum(getattr(e, key) for e in events) or 1.0
    print(f"# {args.config}, batch {args.batch}, {args.precision}, {args.steps} steps profiled on "
          f"{torch.cuda.get_device_name() if cuda else 'the CPU'}; by {key}")  # fmt: skip
    print("| kernel / operator | calls | self ms | share |")
    print("|---|---|---|---|")
    for e in sorted(events, key=lambda e: getattr(e, key), reverse=True)[: args.rows]:
        name = e.key.replace("|", "/")[:90]
        ms = getattr(e, key) / 1e3
        print(f"| {name} | {e.count} | {ms:.2f} | {getattr(e, key) / total:.1%} |")


if __name__ == "__main__":
    main()
