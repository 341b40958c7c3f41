"""Inference speed and memory: chunked encode + decode of long stereo files.

    python bench/inference.py                                  # SA 2.0 VAE, 30 s and 120 s
    python bench/inference.py --seconds 7.5 30 --threads 1 \
        --sat-python /tmp/satvenv/bin/python --sat-seconds 7.5   # also stable-audio-tools

The model is the `stable_audio_2_0_vae` architecture (experiment=stable_audio_2_0_vae; 156M
parameters, 44.1 kHz stereo, ratio 2048) with random weights (seed 0): speed and memory do not
depend on the values. The input is a deterministic mix of tones and noise at 44.1 kHz stereo.
Each case runs in a fresh subprocess, so that its memory is its own: `base` is the resident
memory once the model is loaded (weights, input), `peak` the highest resident memory while
encoding and decoding (Linux VmHWM, reset after loading; ru_maxrss elsewhere), `work` their
difference; on CUDA also torch.cuda.max_memory_allocated. Real-time factor = audio seconds /
processing seconds (> 1 is faster than real time); CPU s = the process's CPU time, which a busy
machine disturbs less than wall time. audioae: load_model, optimize_for_inference, encode_long +
decode_long. stable-audio-tools (with --sat-python, a Python that can import it): the same
weights and input through its own AudioAutoencoder.encode_audio / decode_audio (chunked=True);
its VAE always samples, so its bottleneck is patched to return the mean (what audioae returns),
and it decodes audioae's latents, so both outputs can be compared.
Results are printed as a Markdown table and written as JSON (--json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

RATE = 44100


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def reset_peak_rss() -> float:
    """Current resident MB, and restart the peak (VmHWM) from it where Linux allows; loading the
    model peaks higher than running it, which would hide the running peak otherwise."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS") or peak_rss_mb()


def peak_rss_mb() -> float:
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """(2, T) float32: two detuned tone clusters, a slow tremolo and a little noise, -12 dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    left = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (110, 220.5, 331, 1250))
    right = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (146.8, 293, 587, 2400))
    x = np.stack([left, right]) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.3 * t))
    x = x / np.abs(x).max() * 0.25 + 0.005 * rng.standard_normal(x.shape)
    return x.astype(np.float32)


# --- workers (one per case, each in a fresh process) ---------------------------------------------


def timings(t0: float, t1: float, t2: float, cpu: float, base: float, gpu: float | None) -> dict:
    import torch

    return {
        "encode_s": t1 - t0,
        "decode_s": t2 - t1,
        "cpu_s": cpu,
        "base_mb": base,
        "peak_mb": peak_rss_mb(),
        "gpu_peak_mb": gpu,
        "threads": torch.get_num_threads(),
    }


def ours(args) -> dict:
    import torch

    from audioae.inference import decode_long, encode_long, load_model, optimize_for_inference

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, _ = load_model(args.model)
    optimize_for_inference(model).to(device)
    x = torch.from_numpy(np.load(args.audio))[None]
    base = reset_peak_rss()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0, c0 = time.perf_counter(), time.process_time()
    enc = encode_long(model, x.to(device), args.chunk_size, args.overlap, out_device=device)
    sync()
    t1 = time.perf_counter()
    audio = decode_long(model, enc.latents, enc.length, args.chunk_size, args.overlap)
    sync()
    t2, c2 = time.perf_counter(), time.process_time()
    np.save(Path(args.scratch) / "ours_latents.npy", enc.latents.cpu().numpy())
    np.save(Path(args.scratch) / "ours_audio.npy", audio.cpu().numpy())
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return timings(t0, t1, t2, c2 - c0, base, gpu)


def _sat_factory():
    """stable-audio-tools' create_model_from_config (bench/sat_venv.py stubs what it never uses)."""
    from sat_venv import import_sat  # bench/, beside this script

    import_sat("models.autoencoders")
    from stable_audio_tools.models.factory import create_model_from_config

    return create_model_from_config


def sat(args) -> dict:
    import torch
    from safetensors.torch import load_file

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = json.loads((Path(args.model) / "model_config.json").read_text())
    model = _sat_factory()(config)
    model.load_state_dict(load_file(Path(args.model) / "model.safetensors"))  # strict
    model.eval().to(device)

    def mean(x, return_info=False, **kwargs):  # its VAE always samples (its §11 item 2)
        m = x.chunk(2, dim=1)[0]
        return (m, {}) if return_info else m

    model.bottleneck.encode = mean
    x = torch.from_numpy(np.load(args.audio))[None]
    x = torch.nn.functional.pad(x, (0, -x.shape[-1] % model.downsampling_ratio))  # as required
    ours_latents = torch.from_numpy(np.load(Path(args.scratch) / "ours_latents.npy"))
    base = reset_peak_rss()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    kw = {"chunked": True, "chunk_size": args.chunk_size, "overlap": args.overlap}
    with torch.no_grad():
        t0, c0 = time.perf_counter(), time.process_time()
        latents = model.encode_audio(x.to(device), **kw)
        sync()
        t1 = time.perf_counter()
        audio = model.decode_audio(ours_latents.to(device), **kw)
        sync()
        t2, c2 = time.perf_counter(), time.process_time()
    np.save(Path(args.scratch) / "sat_latents.npy", latents.cpu().numpy())
    np.save(Path(args.scratch) / "sat_audio.npy", audio.cpu().numpy())
    return timings(t0, t1, t2, c2 - c0, base, None)


# --- driver --------------------------------------------------------------------------------------


def export_model(folder: Path, channels: int) -> None:
    """SA 2.0 VAE (with `channels` as its base width) and seed-0 random weights as an export
    (config.yaml, model.safetensors, model_config.json)."""
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    from audioae.build import build_autoencoder
    from audioae.config import config_dir
    from audioae.convert import config_to_sat

    with initialize_config_dir(str(config_dir()), version_base=None):
        overrides = ["experiment=stable_audio_2_0_vae", f"encoder.channels={channels}"]
        cfg = compose("train", overrides=overrides)
    torch.manual_seed(0)
    model = build_autoencoder(cfg)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, folder / "model.safetensors"
    )
    OmegaConf.save(cfg, folder / "config.yaml", resolve=True)
    (folder / "model_config.json").write_text(json.dumps(config_to_sat(cfg)))


def run_worker(python: str, kind: str, args, audio: Path, scratch: Path) -> dict:
    cmd = [python, __file__, "--worker", kind, "--model", str(args.model_dir), "--audio",
           str(audio), "--scratch", str(scratch), "--chunk-size", str(args.chunk_size),
           "--overlap", str(args.overlap), "--device", args.device,
           "--threads", str(args.threads)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def relative_max_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, nargs="+", default=[30.0, 120.0])
    p.add_argument("--channels", type=int, default=128, help="base width (SA 2.0: 128)")
    p.add_argument("--chunk-size", type=int, default=128)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--sat-python", help="a Python that imports stable_audio_tools")
    p.add_argument("--sat-seconds", type=float, nargs="*", help="lengths to run SAT on (all)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--worker", choices=["ours", "sat"], help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--audio", help=argparse.SUPPRESS)
    p.add_argument("--scratch", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps((ours if args.worker == "ours" else sat)(args)))
        return

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        args.model_dir = Path(tmp) / "model"
        args.model_dir.mkdir()
        export_model(args.model_dir, args.channels)
        for seconds in args.seconds:
            scratch = Path(tmp) / f"{seconds:g}s"
            scratch.mkdir()
            audio = scratch / "audio.npy"
            np.save(audio, test_audio(seconds))
            cases = [("audioae", sys.executable, "ours")]
            if args.sat_python and (args.sat_seconds is None or seconds in args.sat_seconds):
                cases.append(("stable-audio-tools", args.sat_python, "sat"))
            for name, python, kind in cases:
                r = run_worker(python, kind, args, audio, scratch)
                r |= {"impl": name, "seconds": seconds}
                r["rtf"] = seconds / (r["encode_s"] + r["decode_s"])
                if kind == "sat":
                    r["latents_rel_err"] = relative_max_error(
                        np.load(scratch / "sat_latents.npy"), np.load(scratch / "ours_latents.npy")
                    )
                    n = np.load(scratch / "ours_audio.npy").shape[-1]
                    r["audio_rel_err"] = relative_max_error(
                        np.load(scratch / "sat_audio.npy")[..., :n],
                        np.load(scratch / "ours_audio.npy"),
                    )
                rows.append(r)
                print(json.dumps(r), file=sys.stderr, flush=True)
    import torch

    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"\n{date.today()}, {platform.node()}, {machine}, torch {torch.__version__}, "
          f"device {args.device}, chunk {args.chunk_size}, overlap {args.overlap}, "
          f"channels {args.channels}\n")  # fmt: skip
    print("| impl | audio s | encode s | decode s | RTF | CPU s | base MB | peak MB | work MB | "
          "vs audioae |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        work = r["peak_mb"] - r["base_mb"]
        ratio = ""
        if r["impl"] != "audioae":
            mine = next(o for o in rows if o["impl"] == "audioae" and o["seconds"] == r["seconds"])
            ratio = (f"audioae {r['cpu_s'] / mine['cpu_s']:.2f}x less CPU time, "
                     f"{mine['rtf'] / r['rtf']:.2f}x wall; max rel. diff latents "
                     f"{r['latents_rel_err']:.1e}, audio {r['audio_rel_err']:.1e}")  # fmt: skip
        print(f"| {r['impl']} | {r['seconds']:g} | {r['encode_s']:.1f} | {r['decode_s']:.1f} | "
              f"{r['rtf']:.3f} | {r['cpu_s']:.1f} | {r['base_mb']:.0f} | {r['peak_mb']:.0f} | "
              f"{work:.0f} | {ratio} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
