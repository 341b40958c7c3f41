"""The run folder: its layout, its checkpoints, and finding the newest complete one.

Training writes it, and inference, evaluation, export and conversion read it; this module is
the only one that knows its file names (as torchtune's checkpointer owns its files).

    RUN/config.yaml                 the fully resolved config (a resume with other settings
                                    writes config.resume-STEP.yaml beside it)
    RUN/.lock                       "PID HOST" of the training that owns the folder
    RUN/tb/                         TensorBoard event files
    RUN/holdout.txt                 the data files never trained on (train/validate.py)
    RUN/demos/step_00000100/        demo WAVs (train/demo.py)
    RUN/checkpoints/step_00000100/  Accelerate's `save_state`: model.safetensors (the
                                    autoencoder), optimizer and RNG states; ours:
                                    discriminator.safetensors, ema.safetensors, state.pt (step
                                    counters, schedulers), config.yaml

An export (`audioae-export`) has the checkpoint's `config.yaml` and `model.safetensors`.

A checkpoint is written into `step_N.tmp` and renamed into place, so a `step_N` folder is
complete; `find_checkpoint` also requires the files a complete one has (`COMPLETE`), so a folder
copied or pruned by hand is passed over rather than half-loaded. A damaged step folder in the way
of a run is renamed `step_N.damaged` (`set_aside`), never deleted.

Nothing here is loaded by unpickling arbitrary objects: weights are safetensors, the rest is
read with `torch.load(weights_only=True)` (Accelerate's own loader does the same). We do not use
`register_for_checkpointing`, whose files Accelerate loads with `weights_only=False`.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from audioae.errors import AudioAEError, CheckpointError

if TYPE_CHECKING:
    from accelerate import Accelerator

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
LOCK = ".lock"
TENSORBOARD = "tb"
HOLDOUT = "holdout.txt"
DEMOS = "demos"
CHECKPOINTS = "checkpoints"
WEIGHTS = "model.safetensors"  # the autoencoder, written by Accelerate's save_state
STATE = "state.pt"
EMA_MODULE = "ema"  # saved as ema.safetensors: the EMA module's state dict
EMA = f"{EMA_MODULE}.safetensors"
DISCRIMINATOR = "discriminator"  # saved as discriminator.safetensors (GAN runs)
DISCRIMINATOR_FILE = f"{DISCRIMINATOR}.safetensors"
COMPLETE = (WEIGHTS, STATE, CONFIG)  # what every checkpoint folder holds
_STEP = "step_"


def step_name(step: int) -> str:
    """The folder name of a step's checkpoint or demos: step_00000100."""
    return f"{_STEP}{step:08d}"


def step_of(name: str) -> int | None:
    """The step of a `step_name`, None for any other name (step_N.tmp, step_N.old, ...)."""
    digits = name[len(_STEP) :]
    return int(digits) if name.startswith(_STEP) and digits.isdigit() else None


def checkpoint_step(folder: Path) -> int:
    """The step of a complete checkpoint: its folder name's, or its state.pt's when renamed."""
    step = step_of(Path(folder).name)
    return step if step is not None else int(read_state(folder)["loop"]["step"])


def read_state(folder: Path) -> dict:
    return torch.load(Path(folder) / STATE, weights_only=True)


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / step_name(step)


def demo_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / DEMOS / step_name(step)


def is_run(path: Path) -> bool:
    """Whether `path` is a run folder (it has checkpoints/, complete ones or not)."""
    return (Path(path) / CHECKPOINTS).is_dir()


def holds_checkpoints(path: Path) -> bool:
    """Whether `path` is a run folder, a checkpoint, or a checkpoints/ folder: a place that
    commands read as a run, so never a place to export into."""
    path = Path(path).expanduser()
    if is_run(path) or is_complete(path) or CHECKPOINTS in (path.name, path.parent.name):
        return True
    return path.is_dir() and any(step_of(p.name) is not None for p in path.iterdir())


def is_complete(folder: Path) -> bool:
    return all((Path(folder) / name).exists() for name in COMPLETE)


def step_folders(run_dir: Path) -> dict[int, Path]:
    """The run's checkpoints/step_N folders by step, complete or not."""
    folder = Path(run_dir) / CHECKPOINTS
    return {s: p for p in folder.glob(f"{_STEP}*") if (s := step_of(p.name)) is not None}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _owner(lock: Path) -> tuple[str, str]:
    """(pid, host) of a lock file."""
    pid, _, host = lock.read_text().strip().partition(" ")
    return pid, host


def _live_owner(lock: Path) -> tuple[str, str] | None:
    """The owner of a lock file, None when there is none or it is a dead process of this host."""
    try:
        pid, host = _owner(lock)
    except OSError:
        return None
    if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
        return None
    return pid, host


# An export's or a model folder's files (stable-audio-tools: model_config.json, model.ckpt);
# a run folder holds its weights under checkpoints/ only.
MODEL_FILES = (WEIGHTS, "model_config.json", "model.ckpt")


def _ours(name: str) -> bool:
    """Whether a top-level name is one a training writes in its run folder: the layout above,
    Hydra's .hydra/ and train.log, and hidden entries (.lock, .submitit/)."""
    resume_config = name.startswith("config.resume-") and name.endswith(".yaml")
    layout = (CONFIG, TENSORBOARD, HOLDOUT, DEMOS, CHECKPOINTS)
    return name in layout or resume_config or name.startswith(".") or name.endswith(".log")


def check_run_dir(run_dir: Path, resume: str | None) -> None:
    """What claim_run_dir refuses, without claiming: a folder that is not an audioae run (an
    export, a model folder, or a folder of other files that is not a run with checkpoints), a
    folder that has checkpoints without resume=, or one that a live training holds."""
    run_dir = Path(run_dir)
    entries = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
    foreign = [n for n in entries if not _ours(n)]
    if any(n in MODEL_FILES for n in foreign) or (foreign and not is_run(run_dir)):
        said = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise CheckpointError(
            f"{run_dir} is not an audioae run folder (it holds {said}, which training does not "
            "write): train into a new or empty folder (hydra.run.dir=...)"
        )
    if not resume and step_folders(run_dir):
        raise CheckpointError(
            f"{run_dir} already has checkpoints: continue it with resume=auto, "
            "or train into a new folder (hydra.run.dir=...)"
        )
    if (owner := _live_owner(run_dir / LOCK)) is not None:
        pid, host = owner
        raise CheckpointError(
            f"{run_dir} is in use by process {pid} on {host or '?'} ({run_dir / LOCK}): train "
            "into another hydra.run.dir, or delete the lock file if that process is gone"
        )


def claim_run_dir(run_dir: Path, resume: str | None) -> None:
    """Make this process the owner of `run_dir`, or fail with one line: a folder that has
    checkpoints is continued only with resume=, and one training at a time holds its lock file
    (a lock left by a dead process of this host is taken over)."""
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume)
    lock, host, me = run_dir / LOCK, socket.gethostname(), f"{os.getpid()} {socket.gethostname()}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(lock, "x") as f:
            f.write(me + "\n")
        return
    except FileExistsError:
        pass
    except OSError as e:
        raise CheckpointError(f"cannot write the run directory {run_dir}: {e.strerror}") from None
    pid, owner = _owner(lock)
    if owner == host and pid.isdigit() and not _alive(int(pid)):
        log.warning("%s: taking over the lock of process %s, which is gone", run_dir, pid)
        lock.write_text(me + "\n")
        return
    check_run_dir(run_dir, resume)  # it was claimed since: in use
    raise CheckpointError(f"{run_dir} is in use ({lock}): train into another hydra.run.dir")


def release_run_dir(run_dir: Path) -> None:
    """Remove this process's lock file from `run_dir` (claim_run_dir)."""
    lock = Path(run_dir) / LOCK
    try:
        if lock.read_text().split()[:1] == [str(os.getpid())]:
            lock.unlink()
    except OSError:
        pass


def run_name(path: str | Path) -> str:
    """A short name for a model path: the run's folder name, with the step for a checkpoint
    inside a run (RUN_step_00000100), or a file's stem."""
    path = Path(path).expanduser().resolve()
    name = path.stem if path.is_file() else path.name
    if path.parent.name == CHECKPOINTS:
        name = f"{path.parent.parent.name}_{name}"
    return name


def find_checkpoint(path: str | Path) -> Path:
    """PATH itself when it is a complete checkpoint folder, else the newest complete checkpoint
    of the run folder PATH (or of a `checkpoints/` folder)."""
    path = Path(path).expanduser()
    if is_complete(path):
        return path
    folder = path / CHECKPOINTS if is_run(path) else path
    steps = {step: p for p in folder.glob(f"{_STEP}*") if (step := step_of(p.name)) is not None}
    complete = [steps[s] for s in sorted(steps) if is_complete(steps[s])]
    if not complete:
        raise CheckpointError(f"{path}: no complete checkpoint (checkpoints/step_N with {WEIGHTS})")
    return complete[-1]


def is_readable(folder: Path) -> bool:
    """Whether a complete checkpoint folder also reads back: every safetensors header fits its
    file and every torch file (state.pt, Accelerate's optimizer*.bin) is a whole zip archive,
    so a folder truncated by a full disk or a copy cut short is found before loading it."""
    import zipfile

    from safetensors import safe_open

    folder = Path(folder)
    if not is_complete(folder):
        return False
    try:
        for file in folder.glob("*.safetensors"):
            with safe_open(str(file), "pt"):  # checks that the header's offsets fit the file
                pass
        return all(zipfile.is_zipfile(f) for f in [folder / STATE, *folder.glob("*.bin")])
    except Exception:  # safetensors raises its own error types for a bad header
        return False


def newest_readable(run_dir: Path, warn: bool = True) -> Path | None:
    """The newest checkpoint of `run_dir` that reads back, warning about each newer step
    folder passed over (empty, incomplete or truncated); None when there is none."""
    for _, folder in sorted(step_folders(run_dir).items(), reverse=True):
        if is_readable(folder):
            return folder
        if warn:
            log.warning("%s is empty, incomplete or truncated: passed over", folder)
    return None


def set_aside(folder: Path) -> Path:
    """Rename a damaged step folder to step_N.damaged (or .damaged-2, ...), so that its step
    can be saved again; it is kept for the user to inspect or delete."""
    folder = Path(folder)
    target, n = folder.with_name(folder.name + ".damaged"), 1
    while target.exists():
        n += 1
        target = folder.with_name(f"{folder.name}.damaged-{n}")
    folder.rename(target)
    log.warning(
        "%s is damaged: moved to %s, so that its step can be saved again", folder, target.name
    )
    return target


def clear_way(run_dir: Path, resume: Path | None, fix: bool = True) -> None:
    """Before a run resumes `resume` (None: starts at step 0) in `run_dir`: refuse when
    `run_dir` holds a readable checkpoint newer than it (training would write over that step's
    demos and logs, then fail to save it), and set aside (`fix`) the damaged newer ones."""
    start = checkpoint_step(resume) if resume is not None else 0
    newer = {s: p for s, p in sorted(step_folders(run_dir).items()) if s > start}
    if intact := [p.name for p in newer.values() if is_readable(p)]:
        given = resume or "step 0"
        raise CheckpointError(
            f"{run_dir} has checkpoints newer than {given}: {', '.join(intact)}; continue from "
            f"the newest with resume=auto, or branch into a new run folder: "
            f"resume={given} hydra.run.dir=NEW"
        )
    for folder in newer.values() if fix else ():
        set_aside(folder)


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of `run_dir`, None when there is none yet."""
    try:
        return find_checkpoint(run_dir)
    except AudioAEError:
        return None


def resume_from(resume: str | None, run_dir: Path, warn: bool = True) -> Path | None:
    """resume=PATH: that checkpoint (or its run's newest); resume=auto: the newest complete
    checkpoint of this run directory, if any (for preempted jobs that restart themselves)."""
    if not resume:
        return None
    if resume == "auto":
        return newest_readable(run_dir, warn)
    if is_run(resume) and not is_complete(resume) and (found := newest_readable(resume, warn)):
        return found
    try:
        return find_checkpoint(resume)
    except CheckpointError as e:
        raise CheckpointError(f"resume: {e}") from None


# Top-level keys that fix the model's shape: a resume that changes one cannot load the weights.
SHAPE_KEYS = (
    "encoder",
    "decoder",
    "bottleneck",
    "pretransform",
    "sample_rate",
    "latent_dim",
    "io_channels",
    "in_channels",
    "out_channels",
    "downsampling_ratio",
)


def _flat(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        return {k: v for key, sub in node.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
    return {prefix.removesuffix("."): node}


def flat_config(cfg: DictConfig) -> dict:
    """{dotted.key: value} of a config, resolved."""
    return _flat(OmegaConf.to_container(cfg, resolve=True))


def config_changes(checkpoint: Path, cfg: DictConfig) -> dict[str, tuple]:
    """{key: (old, new)} for each resolved key that `cfg` sets otherwise than the config saved
    in `checkpoint` (`resume` itself aside). A change to the model's shape (SHAPE_KEYS; a loss
    weight inside bottleneck is not one) is a CheckpointError naming the keys."""
    try:
        old = _flat(OmegaConf.to_container(OmegaConf.load(Path(checkpoint) / CONFIG), resolve=True))
    except OSError as e:
        raise CheckpointError(f"resume: cannot read {checkpoint / CONFIG}: {e.strerror}") from None
    new = _flat(OmegaConf.to_container(cfg, resolve=True))
    unset = "<unset>"
    changes = {
        k: (old.get(k, unset), new.get(k, unset))
        for k in sorted(old.keys() | new.keys())
        if k != "resume" and old.get(k, unset) != new.get(k, unset)
    }
    shape = [
        k for k in changes if k.split(".")[0] in SHAPE_KEYS and "loss_weights" not in k.split(".")
    ]
    if shape:
        said = ", ".join(f"{k} ({changes[k][0]} -> {changes[k][1]})" for k in shape)
        raise CheckpointError(
            f"resume: {checkpoint} has another model shape: {said}; "
            "resume with its settings, or train into a new folder"
        )
    return changes


def resume_config_name(step: int) -> str:
    """Where a resume with other settings records them, beside the run's config.yaml."""
    return f"config.resume-{step_name(step)}.yaml"


def prepare_run_dir(run_dir: Path, cfg: DictConfig, resumed_at: int | None = None) -> Path:
    """Create the run directory and write the resolved config, or fail with one line. A resumed
    run (`resumed_at`: its step) never writes over the run's config.yaml: its settings go to
    config.resume-STEP.yaml (only called when they differ). Returns the file written."""
    target = Path(run_dir) / CONFIG
    if resumed_at is not None and target.exists():
        target = target.with_name(resume_config_name(resumed_at))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, target, resolve=True)
    except OSError as e:
        raise CheckpointError(f"cannot write the run directory {run_dir}: {e}") from None
    return target


def save_checkpoint(
    acc: Accelerator,
    run_dir: Path,
    step: int,
    cfg: DictConfig,
    modules: dict[str, nn.Module],
    state: dict,
) -> Path:
    """Write checkpoints/step_N into a temporary folder, then rename it into place, so that a
    crash during the save leaves earlier checkpoints untouched. `modules` are saved as
    NAME.safetensors, `state` (plain Python data and tensors) as state.pt."""
    final = checkpoint_dir(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    if is_complete(final):
        raise CheckpointError(f"{final} exists: a complete checkpoint is never overwritten")
    try:
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        # every process writes its own random states into tmp: all of them must be done before
        # the main process renames it (seen under load: rank 1 wrote into a renamed folder)
        acc.wait_for_everyone()
        if acc.is_main_process:
            for name, module in modules.items():
                tensors = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
                save_file(tensors, tmp / f"{name}.safetensors")
            torch.save(state, tmp / STATE)
            OmegaConf.save(cfg, tmp / CONFIG, resolve=True)
            if final.exists():  # an incomplete folder of that step (copied or pruned by hand)
                set_aside(final)
            tmp.rename(final)
    except (OSError, RuntimeError) as e:  # full disk, unwritable folder: keep the others
        # torch.save reports a failed write as a RuntimeError ("... No space left on device")
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        reason = (e.strerror if isinstance(e, OSError) else None) or str(e).strip()
        reason = reason.splitlines()[-1] if reason else type(e).__name__
        raise CheckpointError(
            f"cannot write checkpoint {final}: {reason}; earlier checkpoints are kept"
        ) from None
    acc.wait_for_everyone()
    return final


def load_checkpoint(acc: Accelerator, path: Path, modules: dict[str, nn.Module]) -> dict:
    """Restore what `save_checkpoint` wrote; returns its `state`."""
    acc.load_state(str(path))
    for name, module in modules.items():
        file = path / f"{name}.safetensors"
        if not file.exists():
            raise CheckpointError(f"{path}: no {file.name} (was the run configured differently?)")
        module.load_state_dict(load_file(file))  # copied onto the module's device
    return read_state(path)


def ema_weights(ema_state: dict[str, Tensor]) -> dict[str, Tensor] | None:
    """The autoencoder state dict inside an EMA file (train/ema.py's `EMA`: the average as
    `model.*`, the update count as `updates`), or None when the EMA was never updated, since
    its weights are then still the initialisation."""
    state = dict(ema_state)
    updates = state.pop("updates", None)
    if updates is not None and int(updates) == 0:
        return None
    return {k.removeprefix("model."): v for k, v in state.items()}
