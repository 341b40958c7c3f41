"""Loader throughput: audio seconds per second the training loader delivers, beside what training
consumes.

    python bench/loader.py                                   # all formats, rates, workers, kinds
    python bench/loader.py --formats flac --workers 0 2 --kinds folder shards
    python bench/loader.py --kinds folder shards manifest    # once `audioae-manifest` exists
    python bench/loader.py --train-batch 1 --train-steps 1   # + one CPU step of SA 2.0

The sources are made once in bench/cache/loader/ from the stereo 44.1 kHz music of the real-audio
set (bench/real_audio.py, `--seconds` of it in all): the same audio as wav, flac and mp3
(soundfile; mp3 needs libsndfile >= 1.1), at 44.1 kHz and resampled to 48 kHz, each as a folder
and as 8 tar shards. Each source is read as audioae-train reads it (the data config group built
with the stable_audio_2_0_vae experiment: crops of 65536 samples, 44.1 kHz stereo, so 48 kHz files
are resampled; batches through train/loop.py's micro_batches with `trainer.num_workers`).

Reported per source: audio s/s (wall clock) and CPU s per audio s (the CPU time of the main
process and its DataLoader workers over the timed batches; on a shared machine it moves less
than the wall clock). With `--train-steps`, one training step of stable_audio_2_0_vae on this
CPU is timed too (bench/train_throughput.py); the H200 figure is the recorded one in
docs/benchmarks.md (`--gpu-audio-s-per-s`). Cores per GPU = GPU audio s/s x CPU s per audio s.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tarfile
import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import psutil
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir
from torchaudio.functional import resample

from audioae.build import build
from audioae.config import config_dir
from audioae.train.loop import micro_batches

HERE = Path(__file__).resolve().parent
REAL = HERE / "cache" / "real_audio" / "train" / "music"
CACHE = HERE / "cache" / "loader"
FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "mp3": ("MP3", None)}
SHARDS = 8
GPU_AUDIO_S_PER_S = 58.0  # H200, stable_audio_2_0_vae, batch 8, bf16 (docs/benchmarks.md)
# How each kind of source is configured; {dir} is the folder of the files, {shards} the
# shard pattern. A manifest (issue 18, `audioae-manifest`) is made first when asked for.
KINDS = {
    "folder": ["data=audio_dir", "data.path={dir}", "data.holdout=0"],
    "shards": ["data=webdataset", "data.urls='{shards}'", "data.holdout=0"],
    "manifest": ["data=audio_dir", "data.path={dir}", "data.holdout=0", "data.manifest={manifest}"],
}


def prepare(real: Path, seconds: float, formats: list[str], rates: list[int]) -> dict:
    """The sources, made once: {(format, rate): (folder, shard pattern)}."""
    files = sorted(real.glob("*.flac"))
    if not files:
        sys.exit(f"no audio in {real}: build the real-audio set first (bench/real_audio.py)")
    sources = {}
    for fmt in formats:
        for rate in rates:
            folder = CACHE / f"{fmt}_{rate}"
            shard_dir = CACHE / f"shards_{fmt}_{rate}"
            pattern = str(shard_dir / f"shard-{{000..{SHARDS - 1:03d}}}.tar")
            sources[(fmt, rate)] = (folder, pattern)
            if (folder / "done").exists() and (shard_dir / "done").exists():
                continue
            folder.mkdir(parents=True, exist_ok=True)
            shard_dir.mkdir(parents=True, exist_ok=True)
            total, written = 0.0, []
            for path in files:
                if total >= seconds:
                    break
                audio, sr = sf.read(path, dtype="float32", always_2d=True)
                if sr != rate:
                    audio = resample(torch.from_numpy(audio.T.copy()), sr, rate).T.numpy()
                out = folder / f"{path.stem}.{fmt}"
                major, subtype = FORMATS[fmt]
                sf.write(out, np.clip(audio, -1, 1), rate, format=major, subtype=subtype)
                written.append(out)
                total += len(audio) / rate
            for s in range(SHARDS):  # files dealt round-robin into tars, as webdataset keys
                with tarfile.open(shard_dir / f"shard-{s:03d}.tar", "w") as tar:
                    for out in written[s::SHARDS]:
                        tar.add(out, arcname=out.name)
            (folder / "done").touch()
            (shard_dir / "done").touch()
    return sources


def dataset(kind: str, folder: Path, pattern: str, extra: list[str]):
    manifest = folder / "manifest.jsonl"
    if kind == "manifest" and not manifest.exists():
        exe = Path(sys.executable).with_name("audioae-manifest")
        subprocess.run([str(exe), str(folder), "--out", str(manifest)], check=True)
    fill = {"dir": folder, "shards": pattern, "manifest": manifest}
    overrides = [o.format(**fill) for o in KINDS[kind]]
    with initialize_config_dir(str(config_dir()), version_base=None):
        cfg = compose("train", overrides=["experiment=stable_audio_2_0_vae", *overrides, *extra])
    return cfg, build(cfg.data, "data")


def cpu_seconds(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def measure(cfg, data, workers: int, batch: int, batches: int, warmup: int) -> dict:
    cfg.trainer.num_workers, cfg.trainer.batch_size = workers, batch
    cpu = SimpleNamespace(process_index=0, num_processes=1, device=torch.device("cpu"))
    stream = micro_batches(data, cfg, 0, cpu)
    for _ in range(warmup):  # workers started and their first batches made
        next(stream)
    me = psutil.Process()
    c0, t0 = cpu_seconds(me), time.perf_counter()
    for _ in range(batches):
        next(stream)
    wall, used = time.perf_counter() - t0, cpu_seconds(me) - c0
    stream.close()
    audio = batches * batch * cfg.sample_size / cfg.sample_rate
    return {"audio_s_per_s": audio / wall, "cpu_s_per_audio_s": used / audio}


def train_step(batch: int, steps: int) -> float:
    sys.path.insert(0, str(HERE))
    from train_throughput import measure as train_measure

    return train_measure("sa2", ["loss=mrstft_gan"], batch, steps, 1, "no")["audio_s_per_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    p.add_argument("--rates", nargs="+", type=int, default=[44100, 48000])
    p.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--kinds", nargs="+", default=["folder", "shards"], choices=list(KINDS))
    p.add_argument("--seconds", type=float, default=300.0, help="audio per source")
    p.add_argument("--real", type=Path, default=REAL, help="stereo 44.1 kHz flac files")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--batches", type=int, default=6, help="timed batches per source")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--train-batch", type=int, default=1)
    p.add_argument("--train-steps", type=int, default=0, help="0: no CPU training step")
    p.add_argument("--gpu-audio-s-per-s", type=float, default=GPU_AUDIO_S_PER_S)
    p.add_argument("overrides", nargs="*", help="more config overrides (e.g. data.shuffle=0)")
    args = p.parse_args()
    torch.set_num_threads(1)  # as a DataLoader worker runs; the main process decodes with 0
    sources = prepare(args.real, args.seconds, args.formats, args.rates)
    print(
        f"# {date.today()} {platform.node()} {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"libsndfile {sf.__libsndfile_version__}"
    )
    print(f"# {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print("| source | format | file rate | workers | audio s/s | CPU s / audio s |")
    print("|---|---|---|---|---|---|")
    best = {}
    for (fmt, rate), (folder, pattern) in sources.items():
        for kind in args.kinds:
            cfg, data = dataset(kind, folder, pattern, args.overrides)
            for w in args.workers:
                r = measure(cfg, data, w, args.batch, args.batches, args.warmup)
                best.setdefault((fmt, rate), []).append(r["cpu_s_per_audio_s"])
                print(
                    f"| {kind} | {fmt} | {rate} | {w} | {r['audio_s_per_s']:.1f} "
                    f"| {r['cpu_s_per_audio_s']:.4f} |",
                    flush=True,
                )
    print()
    gpu = args.gpu_audio_s_per_s
    print(f"H200 training (stable_audio_2_0_vae, batch 8, bf16): {gpu:.1f} audio s/s")
    if args.train_steps:
        torch.set_num_threads(os.cpu_count() or 1)  # training uses every core
        cpu = train_step(args.train_batch, args.train_steps)
        print(f"this CPU, one training step at batch {args.train_batch}: {cpu:.3f} audio s/s")
    print("| format | file rate | CPU s / audio s (median) | cores per H200 |")
    print("|---|---|---|---|")
    for (fmt, rate), costs in best.items():
        c = float(np.median(costs))
        print(f"| {fmt} | {rate} | {c:.4f} | {gpu * c:.2f} |")


if __name__ == "__main__":
    main()
