"""audioae against stable-audio-tools (SAT) on identical configs, weights and inputs.

    python bench/sat_compare.py                         # training throughput + 30 s inference
    python bench/sat_compare.py --skip inference --steps 8
    python bench/sat_compare.py --seconds 30 120 --json sat.json
    python bench/sat_compare.py --sat-python /path/to/python   # default /tmp/satvenv/bin/python

SAT is never imported here: it runs in its own throwaway venv (docs/benchmarks.md says how to
build it) through a worker script written to a temporary folder and run by that venv's Python.
audioae's side runs in a worker process of this interpreter. The two never share an interpreter,
and each measurement's peak memory is its own process's.

Lock-step timing. A shared VM's speed drifts by large factors within minutes (other jobs, the
host), so the two sides are not run one after the other: both workers are started, build
everything, and then take turns, one unit of work at a time (a training step; an encode; a
decode), the other waiting idle on its pipe. Each unit is timed inside its own worker (wall and
CPU time), and consecutive units of the two sides run seconds apart, under the same conditions.
Which side goes first alternates.

1. Training throughput. One SAT JSON for both sides: stable_audio_2_0_vae.json (the reference's
   config, tests/convert/fixtures/configs/) made CPU-sized: Oobleck encoder/decoder, VAE,
   encodec discriminator, losses, optimizers, schedulers and EMA as in SA 2.0, with only
   `--channels` (128 there), `--filters` (the discriminator's, 64 there) and `--crop`
   (sample_size, 65536 there) smaller. Both widths are divided by 4 by default, which keeps the
   autoencoder : discriminator compute ratio of SA 2.0 (0.31 vs 0.33 forward FLOPs).
   - audioae: `audioae.convert.sat_config(json)`, then audioae.train.loop.build_training and
     Training.step (what `audioae-train`'s loop runs per step: train_step plus the EMA update
     after each generator step), inside audioae.memory.reuse_freed_memory as in that loop. A
     step is timed from the call to Training.step to its return.
   - SAT: its factory (create_model_from_config + create_training_wrapper_from_config) and its
     AutoencoderTrainingWrapper.training_step driven by a minimal pytorch_lightning Trainer
     (no logger, checkpoint or demo callback, progress bar or sanity check; the same batch every
     step from a DataLoader). A step is timed from Lightning's on_train_batch_start hook to its
     on_train_batch_end hook: training_step with its backward, optimizer and EMA steps and its
     log_dict. Lightning's own loop between batches (a few ms) is outside.
   Same initial autoencoder weights (ours, saved with SAT's key names and loaded strictly by
   SAT), the same batch (`--batch` crops of audioae's synthetic music, saved as .npy), the same
   G/D alternation (generator on even steps, discriminator on odd ones), `--warmup` untimed
   steps (the first steps allocate memory and are much slower), then `--steps` timed ones.
2. Inference. The full stable_audio_2_0_vae architecture with seed-0 random weights, saved once
   as SAT's layout (model_config.json + model.safetensors); both sides load those files
   strictly. The input is `--seconds` of audioae's synthetic music, 44.1 kHz stereo.
   - audioae: audioae.inference load_model, optimize_for_inference, encode_long + decode_long
     (VAE mean; crossfaded chunks).
   - SAT: create_model_from_config + load_state_dict (strict), encode_audio / decode_audio
     with chunked=True (hard-cut chunks), under torch.inference_mode like ours. Its VAE always
     samples; the bottleneck still runs its own encode (the sampling work stays in the timing)
     but hands back the mean, and SAT decodes audioae's latents, so the outputs can be compared.
   Same chunk_size and overlap (latent frames) on both sides. RTF = audio seconds / (encode +
   decode) seconds; peak = the worker's highest resident memory while encoding and decoding
   (Linux VmHWM reset after loading), base = resident memory before, work = peak - base.
   Differences: max |audioae - SAT| over the whole output (the seams differ: crossfade vs hard
   cut), and over the first chunk_size/4 frames, which both sides take from the same first
   chunk, so there the difference is float rounding alone (ours folds weight norm away).

Before each part it waits (up to --load-wait seconds) until the 1-minute load average is below
--max-load, and records the load at the start and the end.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import inspect
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from sat_venv import import_sat  # bench/, beside this script

ROOT = Path(__file__).resolve().parents[1]
SA2_JSON = ROOT / "tests/convert/fixtures/configs/stable_audio_2_0_vae.json"
SAT_PYTHON = "/tmp/satvenv/bin/python"
PARTS = ("train", "inference")
RATE = 44100

# --- helpers of both workers: SAT's worker gets their source text (SHARED), since it cannot
# import this file's dependencies -------------------------------------------------------------


def _status_mb(field):
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb():
    """Highest resident memory of this process since the last reset (Linux VmHWM)."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss():
    """Resident MB now, and restart the peak from here where Linux allows."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS") or peak_rss_mb()


class Turns:
    """The worker's side of the lock-step protocol, on stdin/stdout: WAIT asks for a turn and
    blocks until the driver's "go" line; UNIT reports a measurement; RESULT ends. Anything else
    a library prints on stdout is ignored by the driver."""

    waited = 0.0  # seconds spent blocked, waiting for turns

    @staticmethod
    def send(tag, payload):
        sys.stdout.write(tag + " " + json.dumps(payload) + "\n")
        sys.stdout.flush()

    @classmethod
    def wait(cls):
        cls.send("WAIT", {})
        t0 = time.perf_counter()
        if not sys.stdin.readline():
            sys.exit("driver went away")
        cls.waited += time.perf_counter() - t0

    @classmethod
    def each_call(cls, fn):
        """fn, taking a turn before each call (one chunk of a chunked encode or decode)."""

        def wrapped(*args, **kwargs):
            cls.wait()
            return fn(*args, **kwargs)

        return wrapped


class Unit:
    """Wall time (less the time blocked waiting for turns) and CPU time (user + system) of a
    unit of work."""

    def __enter__(self):
        self.t0, self.c0, self.w0 = time.perf_counter(), os.times(), Turns.waited
        return self

    def __exit__(self, *exc):
        c1 = os.times()
        self.wall = time.perf_counter() - self.t0 - (Turns.waited - self.w0)
        self.cpu = c1.user + c1.system - self.c0.user - self.c0.system
        self.sys = c1.system - self.c0.system

    def report(self, **extra):
        Turns.send("UNIT", {"wall": self.wall, "cpu": self.cpu, "sys": self.sys, **extra})


def threads(job):
    import torch

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    return torch.get_num_threads()


SHARED = (_status_mb, peak_rss_mb, reset_peak_rss, Turns, Unit, threads, import_sat)
SHARED_IMPORTS = (
    "import contextlib, importlib, json, os, resource, sys, time\nfrom pathlib import Path\n"
)


# --- audioae's worker (this interpreter) ---------------------------------------------------------


def ours_train(job: dict) -> dict:
    import torch
    from accelerate import Accelerator

    from audioae.build import build_autoencoder
    from audioae.convert import sat_config
    from audioae.inference import load_strict, read_weights
    from audioae.memory import reuse_freed_memory
    from audioae.train.loop import build_training

    n_threads = threads(job)
    torch.manual_seed(0)
    cfg = sat_config(job["config"])
    acc = Accelerator(cpu=True)
    model = build_autoencoder(cfg)
    load_strict(model, read_weights(job["weights"]), job["weights"])
    training = build_training(cfg, acc, model)
    real = torch.from_numpy(np.load(job["batch"]))
    with reuse_freed_memory(acc.device):  # as audioae-train's loop
        for step in range(job["warmup"] + job["steps"]):
            Turns.wait()  # one step per turn
            with Unit() as unit:
                logs = training.step(step, [real], acc)
            unit.report(kind="G" if logs.generator_stepped else "D")
    return {"threads": n_threads, "peak_mb": peak_rss_mb(), "ema": training.ema is not None}


def ours_inference(job: dict) -> dict:
    import torch

    from audioae.inference import decode_long, encode_long, load_model, optimize_for_inference

    n_threads = threads(job)
    model, _ = load_model(job["model_dir"])
    optimize_for_inference(model)
    x = torch.from_numpy(np.load(job["audio"]))[None]
    cs, ov = job["chunk_size"], job["overlap"]
    model.encode = Turns.each_call(model.encode)  # one chunk per turn
    model.decode = Turns.each_call(model.decode)
    base = reset_peak_rss()
    with Unit() as unit:
        enc = encode_long(model, x, cs, ov)
    unit.report(kind="encode")
    latents = job["ours_out"] + "_latents.npy"  # SAT decodes these: written atomically
    np.save(latents + ".part.npy", enc.latents.numpy())
    os.replace(latents + ".part.npy", latents)
    with Unit() as unit:
        audio = decode_long(model, enc.latents, enc.length, cs, ov)
    peak = peak_rss_mb()
    unit.report(kind="decode")
    np.save(job["ours_out"] + "_audio.npy", audio.numpy())
    return {"base_mb": base, "peak_mb": peak, "threads": n_threads}


# --- stable-audio-tools' worker (its own venv's Python, from a temporary file) --------------------

SAT_WORKER = '''
"""stable-audio-tools side of bench/sat_compare.py (written there, run by SAT's venv)."""
from unittest import mock

import numpy as np
import torch

STUBBED = []


def sat_import(training):
    """SAT's factories (bench/sat_venv.py's import_sat stubs what they never use here)."""
    import_sat("models.autoencoders", *(["training.autoencoders"] if training else []))
    from stable_audio_tools.models.factory import create_model_from_config

    if not training:
        return create_model_from_config, None
    from stable_audio_tools.training.factory import create_training_wrapper_from_config

    return create_model_from_config, create_training_wrapper_from_config


def torch_compat():
    """SAT 0.0.19's InverseLR passes `verbose` to LRScheduler.__init__, which newer torch
    dropped: accept and ignore it (no effect on the work done)."""
    import inspect

    base = torch.optim.lr_scheduler.LRScheduler
    if "verbose" in inspect.signature(base.__init__).parameters:
        return []
    init = base.__init__

    def compat(self, optimizer, last_epoch=-1, verbose=False):
        init(self, optimizer, last_epoch)

    base.__init__ = compat
    return ["LRScheduler(verbose) accepted"]


def train(job):
    import pytorch_lightning as pl
    from safetensors.torch import load_file

    n_threads = threads(job)
    shims = torch_compat()
    create_model, create_wrapper = sat_import(training=True)
    config = json.loads(Path(job["config"]).read_text())
    torch.manual_seed(0)
    model = create_model(config)
    model.load_state_dict(load_file(job["weights"]))  # strict
    wrapper = create_wrapper(config, model)
    reals = torch.from_numpy(np.load(job["batch"]))
    total = job["warmup"] + job["steps"]

    class Batches(torch.utils.data.Dataset):
        def __len__(self):
            return total

        def __getitem__(self, i):
            return reals, {}

    class StepTurns(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, idx):
            Turns.wait()  # one step per turn
            self.step = trainer.global_step  # SAT: the discriminator steps on odd ones
            self.unit = Unit().__enter__()

        def on_train_batch_end(self, trainer, module, outputs, batch, idx):
            self.unit.__exit__(None, None, None)
            self.unit.report(kind="D" if self.step % 2 == 1 and module.use_disc else "G")

    trainer = pl.Trainer(
        accelerator="cpu", devices=1, precision=32, max_steps=total, max_epochs=1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[StepTurns()],
    )
    loader = torch.utils.data.DataLoader(Batches(), batch_size=None, num_workers=0)
    trainer.fit(wrapper, loader)
    return {"threads": n_threads, "peak_mb": peak_rss_mb(), "lightning": pl.__version__,
            "ema": wrapper.autoencoder_ema is not None, "stubbed": STUBBED, "shims": shims}


def inference(job):
    from safetensors.torch import load_file

    n_threads = threads(job)
    create_model, _ = sat_import(training=False)
    folder = Path(job["model_dir"])
    model = create_model(json.loads((folder / "model_config.json").read_text()))
    model.load_state_dict(load_file(folder / "model.safetensors"))  # strict
    model.eval().requires_grad_(False)
    sample = model.bottleneck.encode

    def mean(x, return_info=False, **kwargs):  # SAT's VAE always samples: keep the work,
        out = sample(x, return_info=return_info, **kwargs)  # return the mean
        m = x.chunk(2, dim=1)[0]
        return (m, out[1]) if return_info else m

    model.bottleneck.encode = mean
    x = torch.from_numpy(np.load(job["audio"]))[None]
    x = torch.nn.functional.pad(x, (0, -x.shape[-1] % model.downsampling_ratio))  # it needs it
    kw = {"chunked": True, "chunk_size": job["chunk_size"], "overlap": job["overlap"]}
    model.encode = Turns.each_call(model.encode)  # one chunk per turn
    model.decode = Turns.each_call(model.decode)
    base = reset_peak_rss()
    with torch.inference_mode():
        with Unit() as unit:
            latents = model.encode_audio(x, **kw)
        unit.report(kind="encode")
        ours = Path(job["ours_out"] + "_latents.npy")
        while not ours.exists():  # audioae's latents: give it turns until they are written
            Turns.wait()
        ours = torch.from_numpy(np.load(ours))
        with Unit() as unit:
            audio = model.decode_audio(ours, **kw)
    peak = peak_rss_mb()
    unit.report(kind="decode")
    np.save(job["sat_out"] + "_latents.npy", latents.numpy())
    np.save(job["sat_out"] + "_audio.npy", audio.numpy())
    return {"base_mb": base, "peak_mb": peak, "threads": n_threads, "stubbed": STUBBED}


def soundfile_load():
    """torchaudio >= 2.9 decodes through torchcodec, absent here; SAT 0.0.19's SampleDataset
    calls torchaudio.load(file) for the whole file, so it gets the whole file from soundfile
    (as torchaudio's soundfile backend did): (channels, frames) float32 and the rate."""
    import soundfile as sf
    import torchaudio

    def load(path, *args, **kwargs):
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        return torch.from_numpy(data.T.copy()), rate

    torchaudio.load = load
    return ["torchaudio.load -> soundfile (whole file)"]


def whole(job):
    """train.py's run, as it builds it (stable-audio-tools' train.py at the reference commit):
    the dataloader of the dataset config, the model, the training wrapper, its checkpoint,
    exception and model-config callbacks, a logger, and pl.Trainer with
    log_every_n_steps=1. Left out: the demo callback, which fires at step 1 whatever
    demo_every says (audioae's first demo is at demo_every, after these runs end), a one-off
    cost either way. Differences forced by this machine: accelerator "cpu" and
    precision 32 (train.py hard-codes "gpu"; "16-mixed" is GPU-only), max_steps set, and
    TensorBoard for the logger (train.py's default W&B is not installed; TensorBoard is what
    audioae logs to). `job["memory"]`: a DataLoader over pre-decoded crops instead."""
    import pytorch_lightning as pl

    shims = torch_compat() + soundfile_load()
    create_model, create_wrapper = sat_import(training=True)
    from stable_audio_tools.data.dataset import create_dataloader_from_config

    torch.multiprocessing.set_sharing_strategy("file_system")
    pl.seed_everything(job["seed"], workers=True)
    model_config = json.loads(Path(job["config"]).read_text())
    if job["memory"]:
        crops = torch.from_numpy(np.load(job["crops"]))

        class Crops(torch.utils.data.Dataset):
            def __len__(self):
                return len(crops)

            def __getitem__(self, i):
                return crops[i], {}

        train_dl = torch.utils.data.DataLoader(Crops(), job["batch"], num_workers=0,
                                               drop_last=True)
    else:
        train_dl = create_dataloader_from_config(
            json.loads(Path(job["dataset_config"]).read_text()),
            batch_size=job["batch"], num_workers=job["workers"],
            sample_rate=model_config["sample_rate"], sample_size=model_config["sample_size"],
            audio_channels=model_config.get("audio_channels", 2),
        )
    model = create_model(model_config)
    wrapper = create_wrapper(model_config, model)

    class ExceptionCallback(pl.Callback):
        def on_exception(self, trainer, module, err):
            print(f"{type(err).__name__}: {err}")

    class ModelConfigEmbedderCallback(pl.Callback):
        def on_save_checkpoint(self, trainer, pl_module, checkpoint):
            checkpoint["model_config"] = model_config

    logger = pl.loggers.TensorBoardLogger(job["run_dir"], name="tb")
    callbacks = [
        pl.callbacks.ModelCheckpoint(every_n_train_steps=job.get("checkpoint_every", job["steps"]),
                                     dirpath=job["run_dir"] + "/checkpoints", save_top_k=-1),
        ExceptionCallback(), ModelConfigEmbedderCallback(),
    ]
    trainer = pl.Trainer(
        devices=1, accelerator="cpu", precision=32, callbacks=callbacks, logger=logger,
        log_every_n_steps=1, max_epochs=10000000, max_steps=job["steps"],
        default_root_dir=job["run_dir"], reload_dataloaders_every_n_epochs=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(wrapper, train_dl)
    return {"threads": torch.get_num_threads(), "stubbed": STUBBED, "shims": shims,
            "lightning": pl.__version__}


def throughput(job):
    """SAT's training_step under Lightning on `job["device"]` at `job["precision"]` (its
    default "16-mixed", or "bf16-mixed", "32"): steps/s over the timed steps (the device
    synchronised at both ends), peak device memory. No logger, checkpoint or demo."""
    import pytorch_lightning as pl

    shims = torch_compat()
    create_model, create_wrapper = sat_import(training=True)
    config = json.loads(Path(job["config"]).read_text())
    torch.manual_seed(0)
    wrapper = create_wrapper(config, create_model(config))
    reals = torch.from_numpy(np.load(job["batch"]))
    warmup, steps = job["warmup"], job["steps"]
    cuda = job["device"] == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    class Batches(torch.utils.data.Dataset):
        def __len__(self):
            return warmup + steps

        def __getitem__(self, i):
            return reals, {}

    class Clock(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, idx):
            if idx == warmup:
                sync()
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                self.t0 = time.perf_counter()

        def on_train_end(self, trainer, module):
            sync()
            self.seconds = time.perf_counter() - self.t0

    clock = Clock()
    trainer = pl.Trainer(
        accelerator="gpu" if cuda else "cpu", devices=1, precision=job["precision"],
        max_steps=warmup + steps, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[clock],
    )
    loader = torch.utils.data.DataLoader(Batches(), batch_size=None, num_workers=0)
    trainer.fit(wrapper, loader)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mb()
    return {"steps_per_s": steps / clock.seconds, "peak_mb": peak, "shims": shims,
            "stubbed": STUBBED, "precision": job["precision"], "lightning": pl.__version__}


if __name__ == "__main__":
    job = json.loads(Path(sys.argv[2]).read_text())
    kinds = {"train": train, "inference": inference, "whole": whole, "throughput": throughput}
    Turns.send("RESULT", kinds[sys.argv[1]](job))
'''


# --- driver ---------------------------------------------------------------------------------------


class Worker:
    """A worker process speaking Turns' line protocol; its stderr goes to a file (shown if it
    fails)."""

    def __init__(self, name: str, cmd: list[str], log: Path):
        self.name, self.log = name, log
        self.err = log.open("w")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, text=True, bufsize=1,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
        )  # fmt: skip
        self.units: list[dict] = []
        self.turns = 0
        self.result: dict | None = None

    def advance(self) -> bool:
        """Read up to its next WAIT (True) or its RESULT (False), keeping its UNITs."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            tag, _, payload = line.partition(" ")
            if tag == "WAIT":
                return True
            if tag == "UNIT":
                self.units.append(json.loads(payload))
            elif tag == "RESULT":
                self.result = json.loads(payload) | {"units": self.units, "turns": self.turns}
                self.proc.wait()
                self.err.close()
                return False
        code = self.proc.wait()
        self.err.close()
        tail = self.log.read_text()[-4000:]
        raise SystemExit(f"{self.name} worker failed (exit {code}):\n{tail}")

    def go(self) -> bool:
        """Give it one turn; False once it has finished."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        self.turns += 1
        return self.advance()


def lockstep(workers: list[Worker], args) -> tuple[list[dict], dict]:
    """Once every worker is built and waiting and the machine is quiet, give them turns in
    rounds, one each, the first of a round alternating, until all have finished. Only one of
    them runs at any time. Returns their results and the load averages."""
    waiting = {w.name: w.advance() for w in workers}
    load = {"load_before": wait_for_quiet(args.max_load, args.load_wait)}
    rounds = 0
    while any(waiting.values()):
        for w in workers if rounds % 2 == 0 else workers[::-1]:
            if waiting[w.name]:
                waiting[w.name] = w.go()
        rounds += 1
    load["load_after"] = os.getloadavg()[0]
    return [w.result for w in workers], load


def reduced_config(channels: int, filters: int, crop: int) -> dict:
    """SA 2.0 VAE's JSON with smaller widths and crop (everything else as shipped)."""
    config = copy.deepcopy(json.loads(SA2_JSON.read_text()))
    for part in ("encoder", "decoder"):
        config["model"][part]["config"]["channels"] = channels
    config["training"]["loss_configs"]["discriminator"]["config"]["filters"] = filters
    config["sample_size"] = crop
    return config


def synthetic(seconds: float, count: int, seed: int = 0) -> np.ndarray:
    """(count, 2, T) float32 of audioae's synthetic music at 44.1 kHz."""
    from audioae.data.synthetic import SyntheticMusic

    data = SyntheticMusic(RATE, channels=2, sample_size=round(seconds * RATE), seed=seed)
    return np.stack([data[i].numpy() for i in range(count)]).astype(np.float32)


def save_weights(config: dict, path: Path, seed: int = 0) -> int:
    """audioae's model of a SAT config with seed-`seed` random weights, saved with its state-dict
    keys (SAT's, for Oobleck + VAE). Returns the parameter count."""
    import torch
    from safetensors.torch import save_file

    from audioae.build import build_autoencoder
    from audioae.convert import sat_config

    torch.manual_seed(seed)
    model = build_autoencoder(sat_config(config))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return sum(p.numel() for p in model.parameters())


def wait_for_quiet(max_load: float, patience: float) -> float:
    """Wait until the 1-minute load average is below max_load (or `patience` seconds have
    passed); returns the load average the measurement starts at. Our idle workers add ~0."""
    deadline = time.monotonic() + patience
    while (load := os.getloadavg()[0]) >= max_load and time.monotonic() < deadline:
        print(f"  load {load:.2f} >= {max_load}: waiting", file=sys.stderr, flush=True)
        time.sleep(15)
    return load


def write_worker(folder: Path) -> Path:
    """SAT's worker script (run with SAT's Python: `PYTHON sat_worker.py KIND JOB.json`)."""
    shared = "\n\n".join(inspect.getsource(f) for f in SHARED)
    path = folder / "sat_worker.py"
    path.write_text(SHARED_IMPORTS + "\n\n" + shared + "\n" + textwrap.dedent(SAT_WORKER))
    return path


def write_job(folder: Path, name: str, job: dict) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(job))
    return path


def workers(kind: str, job: Path, tmp: Path, args) -> list[Worker]:
    ours = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--job", str(job)]
    sat = [args.sat_python, str(tmp / "sat_worker.py"), kind, str(job)]
    return [
        Worker(f"audioae {kind}", ours, tmp / f"ours_{kind}.log"),
        Worker(f"SAT {kind}", sat, tmp / f"sat_{kind}.log"),
    ]


def compare_training(args, tmp: Path) -> dict:
    config = reduced_config(args.channels, args.filters, args.crop)
    (tmp / "train_config.json").write_text(json.dumps(config, indent=2))
    if args.save_config:
        args.save_config.write_text(json.dumps(config, indent=2) + "\n")
    weights = tmp / "train_weights.safetensors"
    params = save_weights(config, weights)
    np.save(tmp / "batch.npy", synthetic(args.crop / RATE, args.batch, seed=1))
    job = {"config": str(tmp / "train_config.json"), "weights": str(weights),
           "batch": str(tmp / "batch.npy"), "warmup": args.warmup, "steps": args.steps,
           "threads": args.threads}  # fmt: skip
    print("training: building both sides", file=sys.stderr, flush=True)
    (ours, sat), load = lockstep(
        workers("train", write_job(tmp, "train_job", job), tmp, args), args
    )
    for r in (ours, sat):
        step_rates(r, args.warmup, args.steps, args.batch * args.crop / RATE)
    return {"params_M": params / 1e6, "batch": args.batch, "crop": args.crop,
            "channels": args.channels, "filters": args.filters, "warmup": args.warmup,
            "timed_steps": args.steps, "ours": ours, "sat": sat, **load,
            "speedup": ours["steps_per_s"] / sat["steps_per_s"],
            "speedup_median": ours["steps_per_s_median"] / sat["steps_per_s_median"],
            "cpu_ratio": sat["cpu_per_step"] / ours["cpu_per_step"]}  # fmt: skip


def step_rates(r: dict, warmup: int, steps: int, audio_per_step: float) -> None:
    """Throughput over the timed steps, and from the median G and D step (robust to a step that
    another job on the shared machine slowed down)."""
    timed = r["units"][warmup:]
    kinds = "".join(u["kind"] for u in timed)
    if len(timed) != steps or kinds.count("G") != kinds.count("D"):
        raise SystemExit(f"unexpected step kinds {kinds!r}")
    seconds = sum(u["wall"] for u in timed)
    pair = sum(statistics.median(u["wall"] for u in timed if u["kind"] == k) for k in "GD")
    r |= {
        "kinds": kinds,
        "seconds": seconds,
        "steps_per_s": steps / seconds,
        "audio_s_per_s": steps * audio_per_step / seconds,
        "steps_per_s_median": 2 / pair,
        "cpu_per_step": sum(u["cpu"] for u in timed) / steps,
        "sys_share": sum(u["sys"] for u in timed) / max(sum(u["cpu"] for u in timed), 1e-9),
    }


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.shape[-1], b.shape[-1])
    return float(np.abs(a[..., :n] - b[..., :n]).max())


def compare_inference(args, tmp: Path) -> list[dict]:
    model_dir = tmp / "sa2"
    model_dir.mkdir()
    config = json.loads(SA2_JSON.read_text())
    (model_dir / "model_config.json").write_text(json.dumps(config, indent=2))
    params = save_weights(config, model_dir / "model.safetensors")
    ratio = config["model"]["downsampling_ratio"]
    rows = []
    for seconds in args.seconds:
        audio = tmp / f"audio_{seconds:g}.npy"
        np.save(audio, synthetic(seconds, 1, seed=2)[0])
        job = {"model_dir": str(model_dir), "audio": str(audio), "threads": args.threads,
               "chunk_size": args.chunk_size, "overlap": args.overlap,
               "ours_out": str(tmp / "ours"), "sat_out": str(tmp / "sat")}  # fmt: skip
        path = write_job(tmp, f"inference_{seconds:g}", job)
        print(f"inference {seconds:g} s: loading both sides", file=sys.stderr, flush=True)
        (ours, sat), load = lockstep(workers("inference", path, tmp, args), args)
        lat = [np.load(tmp / f"{s}_latents.npy") for s in ("ours", "sat")]
        out = [np.load(tmp / f"{s}_audio.npy") for s in ("ours", "sat")]
        clean = args.chunk_size // 4  # frames both take from their first chunk alone
        for r in (ours, sat):
            enc, dec = r["units"]
            r |= {"encode_s": enc["wall"], "decode_s": dec["wall"],
                  "cpu_s": enc["cpu"] + dec["cpu"], "work_mb": r["peak_mb"] - r["base_mb"],
                  "rtf": seconds / (enc["wall"] + dec["wall"])}  # fmt: skip
        rows.append({
            "seconds": seconds, "params_M": params / 1e6, "chunk_size": args.chunk_size,
            "overlap": args.overlap, "ours": ours, "sat": sat, **load,
            "speedup": ours["rtf"] / sat["rtf"], "cpu_ratio": sat["cpu_s"] / ours["cpu_s"],
            "latents_max_abs": max_abs(*lat),
            "latents_max_abs_first_chunk": max_abs(lat[0][..., :clean], lat[1][..., :clean]),
            "latents_peak": float(np.abs(lat[0]).max()),
            "audio_max_abs": max_abs(*out),
            "audio_max_abs_first_chunk": max_abs(out[0][..., : clean * ratio],
                                                 out[1][..., : clean * ratio]),
            "audio_peak": float(np.abs(out[0]).max()),
        })  # fmt: skip
    return rows


# --- whole runs: audioae-train against SAT's train.py, each a process of its own ---------------


class Crops:
    """Pre-decoded crops for whole runs without data loading (`data._target_=sat_compare.Crops`
    in audioae-train, with bench/ on PYTHONPATH): item n is crop n mod count of the .npy at
    `path`; no held-out files (demos come from the same crops)."""

    held_out_names = ()

    def __init__(self, path: str, **_ignored):
        self.crops = np.load(path)

    def __len__(self) -> int:
        return sys.maxsize // 2

    def __getitem__(self, n: int):
        import torch

        return torch.from_numpy(self.crops[int(n) % len(self.crops)])

    def held_out(self, path=None):
        return self


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants so far."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return math.nan
    total = 0.0
    for q in procs:
        with contextlib.suppress(psutil.Error):
            t = q.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def run_timed(cmd: list[str], log: Path, env: dict) -> dict:
    """Run `cmd` to its end; wall seconds, CPU seconds of its whole process tree (os.wait4:
    the process and every descendant it waited for, e.g. DataLoader workers), and samples
    (time.time(), tree CPU so far) every 0.25 s to split the CPU time at given moments."""
    with log.open("w") as out:
        t0, w0 = time.time(), time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
        samples = [(t0, 0.0)]
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            samples.append((time.time(), tree_cpu(proc.pid)))
            time.sleep(0.25)
        wall = time.perf_counter() - w0
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(
            f"{' '.join(cmd[:3])} ... failed ({proc.returncode}):\n{log.read_text()[-4000:]}"
        )
    return {
        "t0": t0,
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_mb": usage.ru_maxrss / 1024,
        "samples": samples,
    }


def event_times(tb_dir: Path) -> list[float]:
    """Wall times (time.time()) of the scalar log points in a TensorBoard folder, in order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    times = set()
    for events in tb_dir.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            times.update(round(e.wall_time, 3) for e in acc.Scalars(tag))
    return sorted(times)


def cpu_at(samples: list[tuple[float, float]], when: float) -> float:
    """Tree CPU seconds at time `when`, interpolated between the samples."""
    times = [t for t, _ in samples]
    cpus = [c for _, c in samples]
    good = [(t, c) for t, c in zip(times, cpus) if not math.isnan(c)]
    return float(np.interp(when, [t for t, _ in good], [c for _, c in good]))


def whole_split(r: dict, steps: int, audio_per_step: float) -> None:
    """Start-up (process start to the end of step 1, which also allocates everything), the
    steady steps 2..N (from the first to the last log point: both trainers log at step 1 and
    at step N), and the end (checkpoint, exit), in wall and CPU seconds."""
    times = r.pop("events")
    first, last = times[0], times[-1]
    samples = r.pop("samples")
    c_first, c_last = cpu_at(samples, first), cpu_at(samples, last)
    r |= {
        "startup_s": first - r["t0"],
        "startup_cpu": c_first,
        "steady_s": last - first,
        "steady_cpu": c_last - c_first,
        "end_s": r["t0"] + r["wall"] - last,
        "steps_per_s": steps / r["wall"],
        "audio_s_per_s": steps * audio_per_step / r["wall"],
        "cpu_per_step": r["cpu"] / steps,
        "steady_steps_per_s": (steps - 1) / (last - first),
        "steady_cpu_per_step": (c_last - c_first) / (steps - 1),
    }


def compare_whole(args, tmp: Path) -> dict:
    """`--repeats` rounds of whole runs, each round audioae-train and SAT's trainer one after
    the other (who goes first alternates), for each data mode: `folder` (crops decoded from
    `--data` by each trainer's own loader) and `memory` (the same pre-decoded crops for both)."""
    from audioae.convert.sat import sat_to_overrides
    from audioae.data.audio_dir import AudioDir

    config = reduced_config(args.channels, args.filters, args.crop)
    (tmp / "train_config.json").write_text(json.dumps(config, indent=2))
    dataset = {"dataset_type": "audio_dir", "random_crop": True,
               "datasets": [{"id": "data", "path": str(args.data)}]}  # fmt: skip
    (tmp / "dataset.json").write_text(json.dumps(dataset))
    count = args.batch * args.whole_steps
    source = AudioDir(str(args.data), RATE, 2, args.crop, seed=3)
    np.save(tmp / "crops.npy", np.stack([source[i].numpy() for i in range(count)]))
    overrides = sat_to_overrides(config)
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "src"), str(ROOT / "bench"), os.environ.get("PYTHONPATH", "")]
        )
    }
    if args.threads:  # both trainers, and their DataLoader workers
        env["OMP_NUM_THREADS"] = str(args.threads)
    audio_per_step = args.batch * args.crop / RATE
    modes = [m for m in ("folder", "memory") if m not in args.whole_skip]
    runs: dict = {m: {"ours": [], "sat": []} for m in modes}
    n = 0
    load = {"load_before": wait_for_quiet(args.max_load, args.load_wait)}
    for rnd in range(args.repeats):
        for mode in modes:
            order = ("ours", "sat") if n % 2 == 0 else ("sat", "ours")
            n += 1
            for side in order:
                run_dir = tmp / f"{side}_{mode}_{rnd}"
                if side == "ours":
                    data = (
                        ["data._target_=sat_compare.Crops", f"+data.path={tmp / 'crops.npy'}"]
                        if mode == "memory"
                        else ["data=audio_dir", f"data.path={args.data}"]
                    )
                    workers = 0 if mode == "memory" else args.ours_workers
                    cmd = [
                        args.audioae_train,
                        *overrides,
                        *data,
                        f"trainer.batch_size={args.batch}",
                        f"trainer.max_steps={args.whole_steps}",
                        f"trainer.num_workers={workers}",
                        # the work SAT's side does: one checkpoint at the end, no demos (its
                        # demo callback is left out; audioae's first demo would be at step 50)
                        f"trainer.checkpoint_every={args.whole_steps}",
                        "trainer.demo_every=0",
                        f"hydra.run.dir={run_dir}",
                        *args.ours_overrides,
                    ]
                else:
                    job = {"config": str(tmp / "train_config.json"), "memory": mode == "memory",
                           "dataset_config": str(tmp / "dataset.json"),
                           "crops": str(tmp / "crops.npy"), "batch": args.batch,
                           "workers": args.sat_workers, "steps": args.whole_steps, "seed": 42,
                           "run_dir": str(run_dir)}  # fmt: skip
                    cmd = [
                        args.sat_python,
                        str(tmp / "sat_worker.py"),
                        "whole",
                        str(write_job(tmp, f"whole_{side}_{mode}_{rnd}", job)),
                    ]
                print(
                    f"whole run {rnd + 1}/{args.repeats}, {mode}: {side}",
                    file=sys.stderr,
                    flush=True,
                )
                r = run_timed(cmd, tmp / f"{run_dir.name}.log", env)
                r["events"] = event_times(run_dir / "tb")
                whole_split(r, args.whole_steps, audio_per_step)
                r["load"] = os.getloadavg()[0]
                runs[mode][side].append(r)
    load["load_after"] = os.getloadavg()[0]
    summary = {}
    for mode in modes:
        o, s = runs[mode]["ours"], runs[mode]["sat"]
        med = {k: {side: statistics.median(r[k] for r in runs[mode][side]) for side in
                   ("ours", "sat")} for k in ("steps_per_s", "steady_steps_per_s", "cpu_per_step",
                                              "steady_cpu_per_step", "startup_s", "startup_cpu",
                                              "end_s", "wall", "cpu")}  # fmt: skip
        summary[mode] = {
            "median": med,
            "speedup": med["steps_per_s"]["ours"] / med["steps_per_s"]["sat"],
            "cpu_ratio": med["cpu_per_step"]["sat"] / med["cpu_per_step"]["ours"],
            "steady_speedup": med["steady_steps_per_s"]["ours"] / med["steady_steps_per_s"]["sat"],
            "steady_cpu_ratio": med["steady_cpu_per_step"]["sat"]
            / med["steady_cpu_per_step"]["ours"],
            "runs": {"ours": o, "sat": s},
        }
    return {"steps": args.whole_steps, "batch": args.batch, "crop": args.crop,
            "channels": args.channels, "filters": args.filters, "data": str(args.data),
            "repeats": args.repeats, "ours_workers": args.ours_workers,
            "sat_workers": args.sat_workers, "ours_overrides": args.ours_overrides,
            "modes": summary, **load}  # fmt: skip


def whole_table(w: dict) -> list[str]:
    lines = [
        f"Whole runs: audioae-train vs SAT's train.py trainer, SA 2.0 VAE JSON reduced to channels "
        f"{w['channels']}, filters {w['filters']}, crop {w['crop']}; batch {w['batch']}, "
        f"{w['steps']} steps per run, {w['repeats']} alternating round(s); DataLoader workers: "
        f"audioae {w['ours_workers']}, SAT {w['sat_workers']} (folder); load average "
        f"{w['load_before']:.2f} at the start, {w['load_after']:.2f} at the end. Medians over the "
        "runs; *steady* = steps 2..N (first to last log point), *start* = process start to the "
        "end of step 1, *end* = last log point to exit (checkpoint).",
        "",
        "| data | trainer | steps/s | audio s/s | CPU s/step | steady steps/s | steady CPU "
        "s/step | start s (CPU s) | end s | wall s | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    aps = w["batch"] * w["crop"] / RATE
    for mode, m in w["modes"].items():
        med = m["median"]
        for name, key in (("audioae", "ours"), ("stable-audio-tools", "sat")):
            lines.append(
                f"| {mode} | {name} | {med['steps_per_s'][key]:.3f} "
                f"| {med['steps_per_s'][key] * aps:.3f} | {med['cpu_per_step'][key]:.2f} "
                f"| {med['steady_steps_per_s'][key]:.3f} "
                f"| {med['steady_cpu_per_step'][key]:.2f} "
                f"| {med['startup_s'][key]:.1f} ({med['startup_cpu'][key]:.1f}) "
                f"| {med['end_s'][key]:.1f} | {med['wall'][key]:.1f} | {med['cpu'][key]:.1f} |"
            )
    lines.append("")
    for mode, m in w["modes"].items():
        lines.append(
            f"- {mode}: audioae / SAT whole run **{m['speedup']:.2f}x** (CPU per step "
            f"{m['cpu_ratio']:.2f}x less); steady steps {m['steady_speedup']:.2f}x (CPU "
            f"{m['steady_cpu_ratio']:.2f}x)"
        )
        for key in ("ours", "sat"):
            each = ", ".join(f"{r['wall']:.0f}s/{r['cpu']:.0f}cpu" for r in m["runs"][key])
            lines.append(f"  - {key}: {each}")
    lines.append("")
    return lines


def sat_throughput(args, tmp: Path) -> dict:
    """SAT's trainer alone on `--device` at each of `--sat-precision` (bench/gpu_checks.sh):
    the config of `--channels/--filters/--crop` (128 / 64 / 65536: SA 2.0 in full)."""
    config = reduced_config(args.channels, args.filters, args.crop)
    (tmp / "train_config.json").write_text(json.dumps(config, indent=2))
    np.save(tmp / "batch.npy", synthetic(args.crop / RATE, args.batch, seed=1))
    rows = []
    for precision in args.sat_precision.split(","):
        job = {"config": str(tmp / "train_config.json"), "batch": str(tmp / "batch.npy"),
               "warmup": args.warmup, "steps": args.steps, "device": args.device,
               "precision": precision}  # fmt: skip
        path = write_job(tmp, f"throughput_{precision}", job)
        log = tmp / f"sat_throughput_{precision}.log"
        with log.open("w") as err:
            proc = subprocess.run([args.sat_python, str(tmp / "sat_worker.py"), "throughput",
                                   str(path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=err,
                                  text=True)  # fmt: skip
        result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not result:
            raise SystemExit(f"SAT throughput ({precision}) failed:\n{log.read_text()[-4000:]}")
        r = json.loads(result[-1].partition(" ")[2])
        r["audio_s_per_s"] = r["steps_per_s"] * args.batch * args.crop / RATE
        rows.append(r)
        print(
            f"| stable-audio-tools | {precision} | {args.batch} | {r['steps_per_s']:.3f} "
            f"| {r['audio_s_per_s']:.2f} | {r['peak_mb']:.0f} |",
            flush=True,
        )
    return {"rows": rows, "batch": args.batch, "channels": args.channels,
            "filters": args.filters, "crop": args.crop}  # fmt: skip


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} CPUs, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip


def table(results: dict) -> str:
    lines = [f"{results['date']} · {results['machine']}", f"command: `{results['command']}`", ""]
    t = results.get("train")
    if t:
        lines += [
            f"Training: SA 2.0 VAE JSON reduced to channels {t['channels']}, discriminator "
            f"filters {t['filters']}, crop {t['crop']} ({t['crop'] / RATE:.2f} s), "
            f"{t['params_M']:.1f}M autoencoder parameters; batch {t['batch']}; {t['warmup']} "
            f"warm-up + {t['timed_steps']} timed steps, G/D alternating, lock-step; load "
            f"average {t['load_before']:.2f} at the start, {t['load_after']:.2f} at the end",
            "",
            "| trainer | steps/s | steps/s, median G+D | audio s/s | CPU s/step | sys CPU "
            "| peak RSS MB |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, key in (("audioae", "ours"), ("stable-audio-tools", "sat")):
            r = t[key]
            lines.append(
                f"| {name} | {r['steps_per_s']:.3f} | {r['steps_per_s_median']:.3f} "
                f"| {r['audio_s_per_s']:.3f} | {r['cpu_per_step']:.2f} | {r['sys_share']:.0%} "
                f"| {r['peak_mb']:.0f} |"
            )
        lines.append("")
        for name, key in (("audioae", "ours"), ("stable-audio-tools", "sat")):
            steps = " ".join(f"{u['kind']}{u['wall']:.1f}" for u in t[key]["units"])
            lines.append(f"- {name}, wall s per step (first {t['warmup']} untimed): {steps}")
        lines += [
            "",
            f"audioae / SAT training throughput: **{t['speedup']:.2f}x** over the timed steps "
            f"({t['speedup_median']:.2f}x from the median G and D steps); CPU time per step "
            f"{t['cpu_ratio']:.2f}x less",
            "",
        ]
    if results.get("whole"):
        lines += whole_table(results["whole"])
    rows = results.get("inference")
    if rows:
        r0 = rows[0]
        lines += [
            f"Inference: stable_audio_2_0_vae, {r0['params_M']:.0f}M parameters, random weights "
            f"(seed 0); chunked encode + decode, chunk {r0['chunk_size']}, overlap "
            f"{r0['overlap']} latent frames; 44.1 kHz stereo; lock-step",
            "",
            "| impl | audio s | encode s | decode s | RTF | CPU s | base MB | peak MB | work MB "
            "| load start/end |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            for name, key in (("audioae", "ours"), ("stable-audio-tools", "sat")):
                r = row[key]
                lines.append(
                    f"| {name} | {row['seconds']:g} | {r['encode_s']:.1f} | {r['decode_s']:.1f} "
                    f"| {r['rtf']:.3f} | {r['cpu_s']:.1f} | {r['base_mb']:.0f} "
                    f"| {r['peak_mb']:.0f} | {r['work_mb']:.0f} "
                    f"| {row['load_before']:.2f}/{row['load_after']:.2f} |"
                )
        lines.append("")
        for row in rows:
            o, s = row["ours"], row["sat"]
            lines.append(
                f"{row['seconds']:g} s: audioae / SAT real-time factor **{row['speedup']:.2f}x** "
                f"(CPU time {row['cpu_ratio']:.2f}x less), working memory {o['work_mb']:.0f} vs "
                f"{s['work_mb']:.0f} MB; max abs difference: latents {row['latents_max_abs']:.1e} "
                f"(first chunk {row['latents_max_abs_first_chunk']:.1e}; peak "
                f"{row['latents_peak']:.2f}), audio {row['audio_max_abs']:.1e} (first chunk "
                f"{row['audio_max_abs_first_chunk']:.1e}; peak {row['audio_peak']:.2f})"
            )
    return "\n".join(lines)


def worker_main(kind: str, job_path: Path) -> None:
    job = json.loads(job_path.read_text())
    Turns.send("RESULT", (ours_train if kind == "train" else ours_inference)(job))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sat-python", default=SAT_PYTHON, help="Python of SAT's venv (%(default)s)")
    p.add_argument("--skip", default="", help=f"comma-separated parts to skip: {','.join(PARTS)}")
    g = p.add_argument_group("training")
    g.add_argument("--batch", type=int, default=2)
    g.add_argument("--steps", type=int, default=6, help="timed steps (even: G and D alike)")
    g.add_argument("--warmup", type=int, default=4, help="untimed steps first (even)")
    g.add_argument("--channels", type=int, default=32, help="Oobleck channels (SA 2.0: 128)")
    g.add_argument("--filters", type=int, default=16, help="discriminator filters (SA 2.0: 64)")
    g.add_argument("--crop", type=int, default=32768, help="sample_size (SA 2.0: 65536)")
    g.add_argument("--save-config", type=Path, help="also write the reduced SAT JSON here")
    g = p.add_argument_group("inference")
    g.add_argument("--seconds", type=float, nargs="+", default=[30.0])
    g.add_argument("--chunk-size", type=int, default=128)
    g.add_argument("--overlap", type=int, default=32)
    g = p.add_argument_group("whole runs (--whole-run)")
    g.add_argument(
        "--whole-run",
        action="store_true",
        help="also time whole audioae-train processes against SAT's trainer",
    )
    g.add_argument("--whole-steps", type=int, default=12, help="steps per whole run")
    g.add_argument("--repeats", type=int, default=2, help="alternating rounds of whole runs")
    g.add_argument(
        "--data",
        type=Path,
        default=ROOT / "bench/cache/real_audio/train",
        help="folder of audio files for the folder mode (%(default)s)",
    )
    g.add_argument("--whole-skip", default="", help="skip data modes: folder,memory")
    g.add_argument(
        "--ours-workers", type=int, default=0, help="audioae's trainer.num_workers (its default: 0)"
    )
    g.add_argument(
        "--sat-workers",
        type=int,
        default=6,
        help="SAT's num_workers (train.py's default: 6; at least 1)",
    )
    g.add_argument("--audioae-train", default=str(Path(sys.executable).parent / "audioae-train"))
    g.add_argument(
        "--ours-overrides",
        nargs="*",
        default=[],
        help="extra overrides for audioae-train, e.g. trainer.compile=true",
    )
    g = p.add_argument_group("SAT's trainer alone (--sat-throughput; bench/gpu_checks.sh)")
    g.add_argument(
        "--sat-throughput",
        action="store_true",
        help="only time SAT's training steps on --device at --sat-precision",
    )
    g.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    g.add_argument(
        "--sat-precision",
        default="16-mixed,bf16-mixed",
        help="Lightning precisions, comma-separated (%(default)s)",
    )
    g = p.add_argument_group("measurement")
    g.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    g.add_argument("--max-load", type=float, default=2.5, help="wait for a lower load average")
    g.add_argument("--load-wait", type=float, default=300, help="seconds to wait at most, each")
    g.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--worker", choices=PARTS, help=argparse.SUPPRESS)
    p.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker_main(args.worker, args.job)

    skip = {s for s in args.skip.split(",") if s}
    if unknown := skip - set(PARTS):
        p.error(f"--skip: unknown part(s) {','.join(sorted(unknown))}; choose from {PARTS}")
    if args.steps % 2 or args.warmup % 2 or args.steps < 2:
        p.error("--steps and --warmup must be even (--steps >= 2): as many G as D steps")
    ratio = json.loads(SA2_JSON.read_text())["model"]["downsampling_ratio"]
    if "inference" not in skip and min(args.seconds) * RATE < args.chunk_size * ratio:
        p.error(  # §11 item 25 of the reference: UnboundLocalError in SAT's encode_audio
            f"--seconds {min(args.seconds):g}: SAT's chunked encode needs at least one chunk "
            f"({args.chunk_size} frames = {args.chunk_size * ratio / RATE:.2f} s)"
        )
    if not Path(args.sat_python).exists():
        raise SystemExit(
            f"{args.sat_python}: no such Python; build stable-audio-tools' venv as "
            "docs/benchmarks.md says, or pass --sat-python"
        )
    command = " ".join(["python", os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    results = {"date": datetime.now().strftime("%Y-%m-%d %H:%M"), "machine": machine(),
               "command": command, "host": platform.node()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="sat_compare_") as name:
        tmp = Path(name)
        write_worker(tmp)
        if args.sat_throughput:
            print("| trainer | precision | batch | steps/s | audio s/s | peak MB |\n"
                  "|---|---|---|---|---|---|", flush=True)  # fmt: skip
            results["sat_throughput"] = sat_throughput(args, tmp)
            skip = set(PARTS)
        if "train" not in skip:
            results["train"] = compare_training(args, tmp)
        if "inference" not in skip:
            results["inference"] = compare_inference(args, tmp)
        if args.whole_run and not args.sat_throughput:
            results["whole"] = compare_whole(args, tmp)
    if not args.sat_throughput:
        print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
