"""Pre-encoding throughput: `audioae-pre-encode` on a folder of short clips against
`audioae-encode` run file by file, in audio seconds per second of wall time.

    python bench/pre_encode.py                                   # both models, 64 clips
    python bench/pre_encode.py --models default --clips 16 --json out.json

The clips (2-5 s, 44.1 kHz stereo, a fixed draw) are cut from the real-audio set's train/ files
(bench/real_audio.py builds it into bench/cache/real_audio). The models are the default config
(`audioae-train` with no overrides: Oobleck + VAE, ratio 256, 2.4M parameters) and the
`stable_audio_2_0_vae` architecture (156M, ratio 2048), with random weights (seed 0), exported to
a temporary folder: speed does not depend on the values. Each case is the real console script in
a fresh process, timed from start to exit (Python start-up, model loading and writing included:
what a user waits for):
- encode, one call per file: `audioae-encode CKPT FILE` for each clip (a shell loop);
- encode, one call: `audioae-encode CKPT FILES...` (one model load, then file by file);
- pre-encode whole files: `audioae-pre-encode CKPT DIR` (clips of different lengths: batches of 1);
- pre-encode --seconds 5 --batch-size B: every clip padded to 5 s, B per forward pass;
- the same with 2 processes (`accelerate launch --num_processes 2`), each with half the threads.
Results are printed as a Markdown table and written as JSON (--json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
MODELS = {"default": [], "stable_audio_2_0_vae": ["experiment=stable_audio_2_0_vae"]}


def write_clips(source: Path, out: Path, count: int, seed: int = 0) -> float:
    """`count` clips of 2-5 s cut at random from the audio files under `source`; returns their
    total length in seconds."""
    files = sorted(p for p in source.rglob("*") if p.suffix.lower() in (".wav", ".flac"))
    if not files:
        sys.exit(f"no audio under {source}: run bench/real_audio.py first (or --source DIR)")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True)
    total = 0.0
    for k in range(count):
        audio, rate = sf.read(files[k % len(files)], dtype="float32", always_2d=True)
        n = min(len(audio), int(rng.uniform(2.0, 5.0) * rate))
        start = int(rng.integers(0, len(audio) - n + 1))
        sf.write(out / f"clip{k:03d}.wav", audio[start : start + n], rate, subtype="FLOAT")
        total += n / rate
    return total


def export_model(overrides: list[str], out: Path) -> Path:
    """A randomly initialised model of the config `audioae-train OVERRIDES` as an export."""
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    from audioae.build import build_autoencoder
    from audioae.config import config_dir

    with initialize_config_dir(str(config_dir()), version_base=None):
        cfg = compose("train", overrides=overrides)
    torch.manual_seed(0)
    model = build_autoencoder(cfg)
    out.mkdir(parents=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()},
              out / "model.safetensors")  # fmt: skip
    return out


def timed(commands: list[list[str]], threads: int) -> float:
    """Wall seconds to run the commands one after the other."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    for cmd in commands:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd[:3])} ... failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def cases(model: Path, clips: Path, work: Path, device: str, batch: int, threads: int):
    files = sorted(str(p) for p in clips.glob("*.wav"))
    enc, pre = str(BIN / "audioae-encode"), str(BIN / "audioae-pre-encode")
    dev = ["--device", device]
    launch = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no"]  # fmt: skip
    crops = ["--seconds", "5", "--batch-size", str(batch)]
    yield (
        "encode, one call per file",
        threads,
        [[enc, str(model), f, "--out", str(work / f"each{k}"), *dev] for k, f in enumerate(files)],
    )
    yield "encode, one call", threads, [[enc, str(model), *files, "--out", str(work / "one"), *dev]]
    yield (
        "pre-encode, whole files",
        threads,
        [[pre, str(model), str(clips), "--out", str(work / "whole"), *dev]],
    )
    yield (
        f"pre-encode --seconds 5 --batch-size {batch}",
        threads,
        [[pre, str(model), str(clips), "--out", str(work / "crops"), *dev, *crops]],
    )
    yield f"pre-encode --seconds 5 --batch-size {batch}, 2 processes", max(1, threads // 2), [
        [*launch, "-m", "audioae.cli.pre_encode", str(model), str(clips), "--out",
         str(work / "crops2"), *dev, *crops]
    ]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--clips", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--source", type=Path, default=HERE / "cache" / "real_audio" / "train")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--skip", nargs="*", default=[], help="case names to leave out")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        seconds = write_clips(args.source, tmp / "clips", args.clips)
        for name in args.models:
            model = export_model(MODELS[name], tmp / name / "model")
            work = tmp / name / "out"
            for case, threads, commands in cases(
                model, tmp / "clips", work, args.device, args.batch_size, args.threads
            ):
                if case in args.skip:
                    continue
                wall = timed(commands, threads)
                rows.append({"model": name, "case": case, "threads": threads, "wall_s": wall,
                             "audio_s_per_s": seconds / wall})  # fmt: skip
                print(f"{name:22s} {case:48s} {wall:8.1f} s {seconds / wall:8.3f} audio s/s",
                      file=sys.stderr)  # fmt: skip
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.node()} ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores)",
        "device": args.device,
        "clips": args.clips,
        "audio_s": seconds,
        "rows": rows,
    }
    print(f"\n{args.clips} clips, {seconds:.1f} s of audio, device {args.device}\n")
    print("| model | case | threads/process | wall s | audio s/s | vs one call per file |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        base = next((b for b in rows if b["model"] == r["model"] and "per file" in b["case"]), r)
        print(f"| {r['model']} | {r['case']} | {r['threads']} | {r['wall_s']:.1f} | "
              f"{r['audio_s_per_s']:.1f} | {base['wall_s'] / r['wall_s']:.1f}x |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
