"""`audioae-train [overrides]`: train an autoencoder; `-m` sweeps (Hydra multirun).

audioae-train                                   # small Oobleck VAE on embedded data
audioae-train encoder=oobleck bottleneck=vae loss=mrstft_gan
audioae-train experiment=smoke
audioae-train -m bottleneck=vae,tanh trainer.max_steps=2
accelerate launch --num_processes 2 -m audioae.cli.train experiment=smoke  # data parallel
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from audioae.cli.common import fail, run_command
from audioae.config import check_overrides, config_dir
from audioae.distributed import process_rank
from audioae.errors import AudioAEError
from audioae.files import check_writable

log = logging.getLogger("audioae")
PROG = "audioae-train"


@hydra.main(version_base=None, config_path=str(config_dir()), config_name="train")
def run(cfg: DictConfig) -> None:
    from audioae import runs  # heavy imports after Hydra has parsed the CLI
    from audioae.train.loop import Preempted, train

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if process_rank() > 0:
        # SLURM tasks under submitit each run Hydra's job set-up: only rank 0 logs to the run
        # folder (the others keep the console).
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            root.removeHandler(handler)
            handler.close()

    def body() -> tuple[Path | None, int]:
        try:
            return train(cfg, run_dir), 0
        except Preempted as e:  # saved, not finished: 128 + the signal (README, preemption)
            return e.checkpoint, e.status

    ckpt, status = run_command(PROG, body)
    if process_rank() == 0:
        print(f"run directory: {run_dir}")
        tb = run_dir / runs.TENSORBOARD
        print(f"  config:      {run_dir / runs.CONFIG}")
        print(f"  tensorboard: {tb}   (tensorboard --logdir {tb})")
        print(f"  checkpoint:  {ckpt}")
    if status:
        sys.exit(status)


def check_output_dirs(args: list[str]) -> None:
    """Hydra creates the run directory before our code runs and reports a failure as a
    traceback: check the requested folders (or the working directory) first."""
    keys = ("hydra.run.dir=", "hydra.sweep.dir=")
    dirs = [a.split("=", 1)[1] for a in args if a.startswith(keys)] or ["."]
    for d in dirs:
        try:
            check_writable(Path(d))
        except AudioAEError as e:
            fail(PROG, f"cannot write the run directory {d}: {e}")


def check_run_dir(args: list[str]) -> None:
    """Hydra rewrites RUN/.hydra/ and appends to RUN/train.log before our code runs: refuse
    first a run folder that training would refuse (audioae.runs.check_run_dir)."""
    from audioae import runs
    from audioae.cli.common import one_line
    from audioae.errors import AudioAEError

    values = {k.lstrip("+"): v for k, _, v in (a.partition("=") for a in args if "=" in a)}
    resume = values.get("resume")
    resume = None if resume in ("", "null") else resume
    if "hydra.run.dir" in values and "-m" not in args and "--multirun" not in args:
        run_dir = Path(values["hydra.run.dir"])
        try:
            runs.check_run_dir(run_dir, resume)
            if resume and "${" not in resume:  # an interpolation is resolved by Hydra: later
                found = runs.resume_from(resume, run_dir, warn=False)
                runs.clear_way(run_dir, found, fix=False)
        except (AudioAEError, OSError) as e:  # OSError: an unreadable folder
            fail(PROG, one_line(e))


def main() -> None:
    try:
        check_overrides(sys.argv[1:])
    except AudioAEError as e:
        fail(PROG, str(e))
    check_output_dirs(sys.argv[1:])
    if process_rank() == 0:
        check_run_dir(sys.argv[1:])
    if process_rank() > 0:
        # Under `accelerate launch`, torchrun or srun, only the main process writes the Hydra
        # run directory; the others learn its path from it (train() broadcasts it).
        sys.argv += [
            "hydra.output_subdir=null",
            "hydra/job_logging=disabled",
            "hydra/hydra_logging=disabled",
            "hydra.run.dir=.",
        ]
    run()


if __name__ == "__main__":
    main()
