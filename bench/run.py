"""Run the benchmark suite and print one combined table (`make bench ARGS="..."`).

    python bench/run.py                                  # everything (30-40 min on 2 cores)
    python bench/run.py --skip quality,sat               # throughput and inference only
    python bench/run.py --quick                          # tiny sizes: checks that all of it runs
    python bench/run.py --quality-steps 1000 --json bench.json

Benchmarks (each in its own process, its own table printed as it finishes; --skip any):
  train      bench/train_throughput.py: training steps/s and audio s/s for the smoke, default
             (small) and stable_audio_2_0_vae configs at a CPU-sized batch, GAN schedule.
  inference  bench/inference.py: chunked encode + decode real-time factor and peak memory of
             the stable_audio_2_0_vae architecture on long stereo 44.1 kHz input.
  quality    `audioae-train` of the default (small) preset on the benchmark set's training
             files (bench/cache/real_audio/train: music, speech, quiet; built by
             bench/real_audio.py; skipped with a message when missing) for --quality-steps steps,
             then `audioae-eval` on the held-out test/; the means of the eval metrics (and the
             identity and low-pass references).
  sat        bench/sat_compare.py: the same training and inference measurements for
             stable-audio-tools on identical configs, weights and inputs, as ratios. Needs its
             throwaway venv (--sat-python; docs/benchmarks.md says how to build it); skipped with
             a message when missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from sat_compare import machine  # bench/ is on sys.path when run as a script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCHMARKS = ("train", "inference", "quality", "sat")
REAL_AUDIO = ROOT / "bench/cache/real_audio"


def stream(cmd: list[str], log: list[str]) -> int:
    """Run `cmd` from the repository root, echoing its output; its stdout lines go to `log`."""
    print(f"\n$ {shlex.join(cmd)}", flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, bufsize=1)
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        log.append(line.rstrip("\n"))
    return proc.wait()


def markdown_rows(lines: list[str], first: str) -> list[dict]:
    """The rows of the Markdown table whose first header cell is `first`."""
    rows, header = [], None
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|"):
            header = None
        elif cells[0] == first:
            header = cells
        elif header and not set(cells[0]) <= {"-", ":"}:
            rows.append(dict(zip(header, cells)))
    return rows


class Suite:
    def __init__(self, args):
        self.args = args
        self.py = sys.executable
        self.rows: list[tuple[str, str, str]] = []  # (benchmark, case, result)
        self.results: dict = {}

    def add(self, bench: str, case: str, result: str) -> None:
        self.rows.append((bench, case, result))

    def failed(self, bench: str, rc: int) -> None:
        self.add(bench, "-", f"FAILED (exit {rc}; output above)")

    # -- train -------------------------------------------------------------------------------

    def train(self) -> None:
        a = self.args
        log: list[str] = []
        cmd = [
            self.py,
            "bench/train_throughput.py",
            "--configs",
            a.train_configs,
            "--batch",
            str(a.train_batch),
            "--steps",
            str(a.train_steps),
            "--warmup",
            str(a.train_warmup),
            *a.train_overrides,
        ]
        if rc := stream(cmd, log):
            return self.failed("train", rc)
        rows = markdown_rows(log, "config")
        self.results["train"] = rows
        for r in rows:
            self.add(
                "train",
                f"{r['config']} ({r['params (M)']}M params, batch {r['batch']}, crop "
                f"{r['crop (s)']} s)",
                f"{r['steps/s']} steps/s, {r['audio s/s']} audio s/s",
            )

    # -- inference ---------------------------------------------------------------------------

    def inference(self, tmp: Path) -> None:
        a = self.args
        out = tmp / "inference.json"
        cmd = [
            self.py,
            "bench/inference.py",
            "--seconds",
            *map(str, a.inference_seconds),
            "--json",
            str(out),
        ]
        if rc := stream(cmd, []):
            return self.failed("inference", rc)
        rows = json.loads(out.read_text()) if out.exists() else []
        self.results["inference"] = rows
        for r in rows:
            try:
                result = (
                    f"RTF {r['rtf']:.3f}, peak RSS {r['peak_mb']:.0f} MB "
                    f"(working {r['peak_mb'] - r['base_mb']:.0f} MB)"
                )
                self.add("inference", f"{r['impl']} SA 2.0 VAE, {r['seconds']:g} s", result)
            except (KeyError, TypeError):  # its JSON changed: its own table is above
                self.add("inference", "-", "see bench/inference.py's table above")
                return

    # -- quality -----------------------------------------------------------------------------

    def quality(self) -> None:
        a = self.args
        train_dir, test_dir = a.quality_data / "train", a.quality_data / "test"
        if not (train_dir.is_dir() and test_dir.is_dir()):
            print(
                f"\nquality: skipped, no {train_dir} or {test_dir}: build the benchmark set "
                "with `python bench/real_audio.py` (see bench/README.md)"
            )
            self.add("quality", "-", "skipped: benchmark set missing (bench/real_audio.py)")
            return
        run = a.quality_out
        if run.exists():
            shutil.rmtree(run)  # a fixed budget: never resume an older run
        bindir = Path(self.py).parent
        train = [
            str(bindir / "audioae-train"),
            "data=audio_dir",
            f"data.path={train_dir}",
            "data.holdout=0",  # evaluated on test_dir: every training file trains
            f"trainer.max_steps={a.quality_steps}",
            "trainer.demo_every=0",
            f"trainer.checkpoint_every={a.quality_steps}",
            f"hydra.run.dir={run}",
            *a.quality_overrides,
        ]
        start = time.perf_counter()
        if rc := stream(train, []):
            return self.failed("quality", rc)
        train_s = time.perf_counter() - start
        evaluate = [
            str(bindir / "audioae-eval"),
            str(run),
            str(test_dir),
            "--out",
            str(run / "eval"),
            "--no-visqol",
        ]
        if rc := stream(evaluate, []):
            return self.failed("quality", rc)
        report = json.loads((run / "eval/results.json").read_text())
        overall = report["means"]["overall"]
        self.results["quality"] = {
            "steps": a.quality_steps,
            "train_seconds": train_s,
            "run": str(run),
            "means": overall,
        }
        for cond in ("model", "identity", "lowpass4k", "lowpass8k"):
            if cond not in overall:
                continue
            m = overall[cond]
            what = (
                f"default preset, {a.quality_steps} steps ({train_s / 60:.1f} min)"
                if cond == "model"
                else f"reference: {cond}"
            )
            self.add(
                "quality",
                f"test ({overall.get('files', '?')} files), {what}",
                f"SI-SDR {m['si_sdr']:.2f} dB, mel {m['mel']:.3f}, STFT {m['stft']:.3f}",
            )

    # -- sat ---------------------------------------------------------------------------------

    def sat(self, tmp: Path) -> None:
        a = self.args
        if not Path(a.sat_python).exists():
            print(
                f"\nsat: skipped, no {a.sat_python}: build stable-audio-tools' throwaway venv "
                "as docs/benchmarks.md says, or pass --sat-python"
            )
            self.add("sat", "-", f"skipped: no {a.sat_python}")
            return
        out = tmp / "sat.json"
        cmd = [
            self.py,
            "bench/sat_compare.py",
            "--sat-python",
            a.sat_python,
            "--json",
            str(out),
            *a.sat_args,
        ]
        if rc := stream(cmd, []):
            return self.failed("sat", rc)
        r = json.loads(out.read_text())
        self.results["sat"] = r
        if t := r.get("train"):
            o, s = t["ours"], t["sat"]
            self.add(
                "sat",
                f"train, SA 2.0 VAE reduced (channels {t['channels']}, filters {t['filters']}, "
                f"crop {t['crop']}), batch {t['batch']}",
                f"audioae {o['steps_per_s']:.3f} vs SAT {s['steps_per_s']:.3f} steps/s: "
                f"{t['speedup']:.2f}x",
            )
        for row in r.get("inference", []):
            o, s = row["ours"], row["sat"]
            self.add(
                "sat",
                f"inference, SA 2.0 VAE, {row['seconds']:g} s",
                f"RTF audioae {o['rtf']:.3f} vs SAT {s['rtf']:.3f}: {row['speedup']:.2f}x; peak "
                f"{o['peak_mb']:.0f} vs {s['peak_mb']:.0f} MB; max abs diff of the audio "
                f"{row['audio_max_abs']:.1e}",
            )

    # -- all ---------------------------------------------------------------------------------

    def run(self, skip: set[str]) -> None:
        with tempfile.TemporaryDirectory(prefix="audioae_bench_") as name:
            tmp = Path(name)
            for bench in BENCHMARKS:
                if bench in skip:
                    continue
                started = time.perf_counter()
                getattr(self, bench)(*([tmp] if bench in ("inference", "sat") else []))
                self.results.setdefault("seconds", {})[bench] = time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--skip", default="", help=f"comma-separated: {','.join(BENCHMARKS)}")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes everywhere (a check that the suite runs, not numbers)",
    )
    p.add_argument("--json", type=Path, help="write every result here")
    g = p.add_argument_group("train")
    g.add_argument("--train-configs", default="smoke,default,sa2")
    g.add_argument("--train-batch", type=int, default=2)
    g.add_argument("--train-steps", type=int, default=6)
    g.add_argument("--train-warmup", type=int, default=2)
    g.add_argument(
        "--train-overrides",
        nargs="*",
        default=["loss=mrstft_gan"],
        help="Hydra overrides for every config (default: loss=mrstft_gan)",
    )
    g = p.add_argument_group("inference")
    g.add_argument("--inference-seconds", type=float, nargs="+", default=[30.0, 120.0])
    g = p.add_argument_group("quality")
    g.add_argument("--quality-steps", type=int, default=300)
    g.add_argument(
        "--quality-data",
        type=Path,
        default=REAL_AUDIO,
        help="folder with train/ and test/ (default: the real-audio benchmark set)",
    )
    g.add_argument(
        "--quality-out",
        type=Path,
        default=ROOT / "outputs/bench_quality",
        help="run directory, replaced on each run (default: %(default)s)",
    )
    g.add_argument(
        "--quality-overrides", nargs="*", default=[], help="extra Hydra overrides for audioae-train"
    )
    g = p.add_argument_group("sat")
    g.add_argument("--sat-python", default="/tmp/satvenv/bin/python")
    g.add_argument(
        "--sat-args",
        default="",
        help='extra arguments for bench/sat_compare.py, e.g. "--steps 8 --seconds 30"',
    )
    args = p.parse_args()
    skip = {s for s in args.skip.split(",") if s}
    if unknown := skip - set(BENCHMARKS):
        p.error(f"--skip: unknown {','.join(sorted(unknown))}; choose from {','.join(BENCHMARKS)}")
    args.sat_args = shlex.split(args.sat_args)
    if args.quick:
        args.train_configs, args.train_steps, args.train_warmup = "smoke", 2, 0
        args.inference_seconds = [2.0]
        args.quality_steps = 2
        args.quality_overrides = [*args.quality_overrides, "trainer.batch_size=1"]
        args.sat_args = [
            "--steps",
            "2",
            "--warmup",
            "0",
            "--crop",
            "8192",
            "--seconds",
            "3",
            "--chunk-size",
            "32",
            "--overlap",
            "8",
            "--max-load",
            "1000",
            *args.sat_args,
        ]

    command = shlex.join(["python", "bench/run.py", *sys.argv[1:]])
    started = datetime.now()
    suite = Suite(args)
    suite.run(skip)
    print(f"\n## Benchmark summary\n\n{started:%Y-%m-%d %H:%M} · {platform.node()} · {machine()}")
    took = ", ".join(f"{k} {v / 60:.1f} min" for k, v in suite.results.get("seconds", {}).items())
    took = took or "nothing run"
    print(f"command: `{command}`; took {took}; load average at the end "
          f"{os.getloadavg()[0]:.2f}\n")  # fmt: skip
    print("| benchmark | case | result |")
    print("|---|---|---|")
    for bench, case, result in suite.rows:
        print(f"| {bench} | {case} | {result} |")
    if args.json:
        suite.results |= {
            "command": command,
            "date": f"{started:%Y-%m-%d %H:%M}",
            "machine": machine(),
            "summary": suite.rows,
        }
        args.json.write_text(json.dumps(suite.results, indent=2) + "\n")
    if any(result.startswith("FAILED") for _, _, result in suite.rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
