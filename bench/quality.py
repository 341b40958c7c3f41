"""Learning curves on real, mixed audio: train recipes for a budget of CPU seconds, evaluate
their checkpoints along the way, draw metric against CPU seconds.

    python bench/quality.py --recipes sat_recipe,recipe --seeds 0 1 --budget 1200
    python bench/quality.py --recipes "recipe:trainer.schedule.warmup_steps=0" --merge OUT
    python bench/quality.py --recipes sat_recipe,sat_recipe@sat --seeds 2 --jobs 2
    python bench/quality.py --recipes smoke --budget 60 --checkpoint-every 1 --max-steps 2 \\
        --data DIR --out outputs/q           # what the test suite runs (seconds)

DATA (default: the real-audio set of bench/real_audio.py) holds train/ and test/, each with one
sub-folder per category (music: true stereo; speech: dual mono; quiet: -30 dBFS). For each recipe
(an experiment preset) and seed, `audioae-train` runs on DATA/train (`data=audio_dir`, no demos,
no validation, a checkpoint every --checkpoint-every steps) until the process has used --budget
CPU seconds (user + system, read from /proc; then SIGTERM saves a last checkpoint) or
--max-steps. Each checkpoint is one point, at the CPU seconds the process had used when the
checkpoint appeared. Every point is evaluated afterwards by `audioae-eval` on the first
--test-seconds of every file of DATA/test (mel and STFT distance as descript-audio-codec defines
them, SI-SDR; per category), beside the untrained network (the same seed's initial weights: one
step at learning rate 0) and the reference conditions identity and low-pass 4/8 kHz.
Runs use --threads torch threads each (default 1, so that CPU seconds measure work even on a busy
machine, where waiting threads spin) and --jobs of them train at once.

PRESET@sat trains the preset with stable-audio-tools' own trainer instead (its train.py's flow,
bench/sat_compare.py's `whole` job, from the venv of --sat-python, built as docs/benchmarks.md
says), on the model config `audioae-convert --to-json` gives for the preset (what it cannot say
is printed), the same data and seed; its Lightning checkpoints are evaluated the same way (their
EMA weights). Its seed-0..N initial weights are audioae's: the untrained points agree.

A recipe may carry overrides after a colon, separated by semicolons (an ablation:
`recipe:trainer.schedule.warmup_steps=0;loss.weights.time.l1=0`); the whole spec names its line.
With --merge, the runs already in OUT/quality.json are kept (runs of the same recipe and seed are
replaced), so that runs made at different times are drawn together. The JSON and the PNG are
rewritten after every finished run, so an interrupted benchmark keeps what it finished.

Writes OUT/quality.json (every point, the references, the commands) and OUT/quality.png (one panel
per metric and category, one line per recipe, a line style per seed), and prints a table of the
last point of every run against the untrained network.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import sat_compare  # bench/, beside this script
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
METRICS = {
    "mel": "mel distance",
    "stft": "STFT distance",
    "si_sdr": "SI-SDR (dB)",
    "dependence": "input dependence (0: collapsed)",
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # evaluation: one thread


def fail(message: str) -> None:
    sys.exit(f"quality: {message}")


def shown(path: Path) -> str:
    """`path` relative to the repository when it is inside it (as recorded and drawn)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def crop_test_set(test: Path, seconds: float, out: Path) -> list[str]:
    """The first `seconds` of every audio file under test/CATEGORY/, as WAV under out/CATEGORY/;
    returns the categories."""
    files = sorted(p for p in test.rglob("*") if p.suffix.lower() in {".wav", ".flac", ".ogg"})
    if not files:
        fail(f"no audio files under {test}")
    shutil.rmtree(out, ignore_errors=True)
    for path in files:
        info = sf.info(path)
        audio, rate = sf.read(path, frames=int(seconds * info.samplerate), always_2d=True)
        target = out / path.relative_to(test).with_suffix(".wav")
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, audio, rate, subtype="FLOAT")
    return sorted({p.relative_to(test).parts[0] for p in files if p.parent != test})


def split_spec(spec: str) -> tuple[str, list[str]]:
    """ "preset:key=value;key=value" -> ("preset", ["key=value", "key=value"])."""
    preset, _, overrides = spec.partition(":")
    return preset, [o for o in overrides.split(";") if o]


def run_name(spec: str, seed: int) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in spec)
    return f"{safe}_s{seed}"


def train(args, recipe: str, seed: int, run: Path, untrained: bool = False) -> list[dict]:
    """Train until the CPU budget (or --max-steps); returns [{step, cpu_s, checkpoint}].
    `untrained`: one step at learning rate 0 (the initial weights, as a checkpoint)."""
    preset, overrides = split_spec(recipe)
    preset, _, trainer = preset.partition("@")
    shutil.rmtree(run, ignore_errors=True)  # a fixed budget: never continue an older run
    run.mkdir(parents=True)
    steps, every = (1, 1) if untrained else (args.max_steps, args.checkpoint_every)
    if trainer == "sat":
        cmd, env = sat_command(args, preset, overrides, seed, run, steps, every, untrained)
    elif trainer:
        fail(f"{recipe}: unknown trainer @{trainer} (only @sat)")
    else:
        zero = ["optim.generator.optimizer.lr=0", "optim.discriminator.optimizer.lr=0"]
        cmd = [
            str(BIN / "audioae-train"),
            f"experiment={preset}",
            "data=audio_dir",
            f"data.path={args.data / 'train'}",
            f"trainer.seed={seed}",
            f"trainer.max_steps={steps}",
            f"trainer.checkpoint_every={every}",
            "trainer.demo_every=0",
            "trainer.val_every=0",
            "data.holdout=0",  # the test files are a folder of their own
            f"hydra.run.dir={run}",
            *args.overrides,
            *overrides,
            *(zero if untrained else []),
        ]
        env = dict(os.environ)
    log = (run.parent / f"{run.name}.log").open("w")
    print(f"{recipe} seed {seed}: {' '.join(cmd[1:])}", flush=True)
    threads = str(args.threads)
    env |= {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    points: dict[Path, float] = {}
    used, stopping = 0.0, False
    while proc.poll() is None:
        # the process tree's CPU seconds (DataLoader workers too); nan: it just ended
        cpu = sat_compare.tree_cpu(proc.pid)
        used = used if math.isnan(cpu) else cpu
        for ckpt in checkpoints(run):
            points.setdefault(ckpt, used)
        if used >= args.budget and not stopping:
            proc.send_signal(signal.SIGTERM)  # audioae-train saves a checkpoint at this step
            stopping = True
        time.sleep(0.2)
    log.close()
    if proc.returncode not in (0, 143) and not (stopping and proc.returncode > 0):
        fail(f"{recipe} failed ({proc.returncode}), see {run.parent / (run.name + '.log')}")
    for ckpt in checkpoints(run):
        points.setdefault(ckpt, used)
    return [
        {"step": step_of(c), "cpu_s": round(s, 2), "checkpoint": str(c)}
        for c, s in sorted(points.items(), key=lambda kv: step_of(kv[0]))
    ]


def checkpoints(run: Path) -> list[Path]:
    """The finished checkpoints of a run: audioae's step_N folders, SAT's epoch=E-step=N.ckpt."""
    found = run.glob("checkpoints/*")
    return [c for c in found if re.fullmatch(r"step_\d+|epoch=\d+-step=\d+\.ckpt", c.name)]


def step_of(checkpoint: Path) -> int:
    return int(re.search(r"step[_=](\d+)", checkpoint.name)[1])


def sat_command(args, preset, overrides, seed, run, steps, every, untrained):
    """stable-audio-tools' own trainer (its train.py's flow, bench/sat_compare.py's `whole` job)
    on the model config that `audioae-convert --to-json` gives for the preset: the command and
    its environment. Checkpoints land in run/checkpoints beside that model_config.json, where
    audioae-eval reads them (their EMA weights, as audioae's). Its loader needs a DataLoader
    worker (persistent_workers), whose CPU seconds count too."""
    import warnings

    from audioae.convert import config_to_sat
    from audioae.convert.overrides import compose_train

    if not Path(args.sat_python).exists():
        fail(f"{args.sat_python}: no such Python; build stable-audio-tools' venv as "
             "docs/benchmarks.md says, or pass --sat-python")  # fmt: skip
    cfg = compose_train([f"experiment={preset}", *args.overrides, *overrides])
    with warnings.catch_warnings(record=True) as lost:
        warnings.simplefilter("always")
        config = config_to_sat(cfg)
    for warning in lost:
        print(f"  {preset}@sat: {warning.message}", flush=True)
    if untrained:
        for part in config["training"]["optimizer_configs"].values():
            part["optimizer"]["config"]["lr"] = 0.0
    (run / "checkpoints").mkdir()
    model_config = run / "checkpoints/model_config.json"
    model_config.write_text(json.dumps(config, indent=2))
    dataset = {"dataset_type": "audio_dir", "random_crop": True,
               "datasets": [{"id": "train", "path": str(args.data / "train")}]}  # fmt: skip
    (run / "dataset.json").write_text(json.dumps(dataset))
    job = {"config": str(model_config), "dataset_config": str(run / "dataset.json"),
           "memory": False, "batch": cfg.trainer.batch_size, "workers": 1, "steps": steps,
           "checkpoint_every": every, "seed": seed, "run_dir": str(run)}  # fmt: skip
    worker = sat_compare.write_worker(run)
    cmd = [args.sat_python, str(worker), "whole", str(sat_compare.write_job(run, "job", job))]
    path = [str(ROOT / "src"), str(ROOT / "bench"), os.environ.get("PYTHONPATH", "")]
    return cmd, {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def evaluate(checkpoint: Path, test: Path, out: Path, conditions: str) -> dict:
    """audioae-eval's per-category means: {category: {condition: {metric: value}}}."""
    cmd = [str(BIN / "audioae-eval"), str(checkpoint), str(test), "--out", str(out)]
    cmd += ["--no-visqol", "--conditions", conditions]
    shutil.rmtree(out, ignore_errors=True)  # this script's own output of an earlier run
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if proc.returncode:
        fail(f"audioae-eval {checkpoint} failed: {proc.stderr.strip()[-400:]}")
    means = json.loads((out / "results.json").read_text())["means"]
    cats = {"overall": means["overall"], **means["folders"]}
    keep = {c: {k: v for k, v in m.items() if isinstance(v, dict)} for c, m in cats.items()}
    return {c: {cond: {k: m[cond].get(k) for k in METRICS} for cond in m} for c, m in keep.items()}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = result["categories"]
    fig, axes = plt.subplots(
        len(METRICS), len(cats), figsize=(4.2 * len(cats), 3 * len(METRICS)), squeeze=False
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    all_seeds = sorted({int(seed) for seeds in result["runs"].values() for seed in seeds})
    for j, cat in enumerate(cats):
        for i, (metric, label) in enumerate(METRICS.items()):
            ax = axes[i][j]
            for k, (recipe, seeds) in enumerate(result["runs"].items()):
                for seed, run in sorted(seeds.items(), key=lambda item: int(item[0])):
                    xs = [0.0] + [p["cpu_s"] for p in run["points"]]
                    ys = [run["untrained"][cat]["model"].get(metric)]
                    ys += [p["metrics"][cat]["model"].get(metric) for p in run["points"]]
                    ys = [math.nan if y is None else y for y in ys]  # runs from before a metric
                    ax.plot(
                        xs,
                        ys,
                        styles[all_seeds.index(int(seed)) % 4],  # one style per seed
                        color=colours[k % len(colours)],
                        marker=".",
                        label=f"{recipe} (seed {seed})",
                    )
            for cond, style in (("lowpass4k", (0, (1, 3))), ("lowpass8k", (0, (3, 3)))):
                value = result["references"].get(cat, {}).get(cond, {}).get(metric)
                if value is not None and abs(value) < 100:  # a low-pass above Nyquist: +inf dB
                    ax.axhline(
                        value,
                        color="grey",
                        linestyle=style,
                        linewidth=1,
                        label=f"reference: {cond}",
                    )
            ax.set_title(f"{cat}: {label}", fontsize=10)
            ax.set_xlabel("CPU seconds")
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.suptitle(f"audioae learning curves on {result['data']} ({result['machine']})", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def table(result: dict) -> str:
    lines = [
        f"{'run':<28} {'category':<9} {'CPU s':>7} {'step':>6}  mel (untrained)  "
        "STFT (untrained)  SI-SDR dB  dependence"
    ]
    for recipe, seeds in result["runs"].items():
        for seed, run in seeds.items():
            if not run["points"]:
                continue
            last = run["points"][-1]
            for cat in result["categories"]:
                m, u = last["metrics"][cat]["model"], run["untrained"][cat]["model"]
                lines.append(
                    f"{recipe + ' s' + seed:<28} {cat:<9} {last['cpu_s']:>7.0f} {last['step']:>6}"
                    f"  {m['mel']:5.2f} ({u['mel']:5.2f})    {m['stft']:5.2f} ({u['stft']:5.2f})"
                    f"    {m['si_sdr']:7.2f}  {fmt(m.get('dependence'))}"
                )
    return "\n".join(lines)


def fmt(value: float | None) -> str:
    return f"{value:10.3f}" if value is not None else f"{'-':>10}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--recipes", default="sat_recipe,recipe", help="experiment presets, comma-separated"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--budget", type=float, default=1200, help="CPU seconds per run")
    p.add_argument("--checkpoint-every", type=int, default=50, help="steps between points")
    p.add_argument("--max-steps", type=int, default=10**6)
    p.add_argument("--data", type=Path, default=ROOT / "bench/cache/real_audio")
    p.add_argument("--test-seconds", type=float, default=10.0)
    p.add_argument("--out", type=Path, default=ROOT / "outputs/quality")
    p.add_argument("--png", type=Path, help="default: OUT/quality.png")
    p.add_argument("--overrides", nargs="*", default=[], help="extra overrides for every run")
    p.add_argument("--merge", action="store_true", help="keep the other runs of OUT/quality.json")
    p.add_argument(
        "--sat-python", default="/tmp/satvenv/bin/python", help="for PRESET@sat (%(default)s)"
    )
    p.add_argument("--jobs", type=int, default=1, help="runs trained at the same time")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per run (default 1: CPU seconds then count work, not the spinning "
        "of threads that wait for a busy core)",
    )
    args = p.parse_args(argv)
    args.data, args.out = args.data.resolve(), args.out.resolve()
    if not (args.data / "train").is_dir() or not (args.data / "test").is_dir():
        fail(f"{args.data} needs train/ and test/ (build it: python bench/real_audio.py)")
    test = args.out / "test"
    categories = crop_test_set(args.data / "test", args.test_seconds, test)
    result: dict = {
        "command": "python bench/quality.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "data": shown(args.data),
        "budget_cpu_s": args.budget,
        "test_seconds": args.test_seconds,
        "categories": ["overall", *categories],
        "references": {},
        "runs": {},
    }
    conditions = "identity,lowpass4k,lowpass8k"

    def one(recipe: str, seed: int) -> dict:
        run = args.out / "runs" / run_name(recipe, seed)
        # the untrained network: this seed's initial weights (one step at learning rate 0)
        init = train(args, recipe, seed, run.with_name(run.name + "_init"), untrained=True)
        untrained = evaluate(
            Path(init[-1]["checkpoint"]), test, run.parent / f"{run.name}_eval0", conditions
        )
        points = train(args, recipe, seed, run)
        for point in points:
            out = args.out / "eval" / run.name / f"step_{point['step']}"
            point["metrics"] = evaluate(Path(point["checkpoint"]), test, out, "")
            mel = point["metrics"]["overall"]["model"]["mel"]
            print(
                f"  {run.name} step {point['step']} at {point['cpu_s']:.0f} CPU s: mel {mel:.3f}",
                flush=True,
            )
        return {"untrained": untrained, "points": points}

    previous = args.out / "quality.json"
    if args.merge and previous.is_file():
        kept = json.loads(previous.read_text())
        result["runs"], result["references"] = kept["runs"], kept["references"]
        result["command"] = kept["command"] + "; " + result["command"]
        extra = [c for c in kept["categories"] if c not in result["categories"]]
        result["categories"] += extra
    png = args.png or args.out / "quality.png"

    def write() -> None:
        (args.out / "quality.json").write_text(json.dumps(result, indent=2) + "\n")
        plot(result, png)

    pairs = [(r, s) for r in args.recipes.split(",") for s in args.seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(one, *pair): pair for pair in pairs}
        for future in as_completed(futures):
            (recipe, seed), run = futures[future], future.result()
            if not result["references"]:  # the reference conditions are shown once
                result["references"] = {
                    c: {k: v for k, v in m.items() if k != "model"}
                    for c, m in run["untrained"].items()
                }
            run["untrained"] = {c: {"model": m["model"]} for c, m in run["untrained"].items()}
            result["runs"].setdefault(recipe, {})[str(seed)] = run
            write()
    print(table(result))
    print(f"wrote {args.out / 'quality.json'}, {png}")


if __name__ == "__main__":
    main()
