"""Distributed set-up for SLURM jobs started without a launcher (Hydra's submitit launcher).

`accelerate launch` and `torchrun` set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT. A SLURM job that runs one task per GPU (srun, or submitit with
tasks_per_node = GPUs) sets only SLURM_* variables; `env_from_slurm` translates them so that
Accelerate sees one distributed job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def env_from_slurm(environ: Mapping[str, str]) -> dict[str, str]:
    """The torch.distributed variables implied by SLURM's, or {} when not needed."""
    tasks = int(environ.get("SLURM_NTASKS", "1"))
    if "RANK" in environ or tasks < 2:
        return {}
    return {
        "RANK": environ["SLURM_PROCID"],
        "WORLD_SIZE": str(tasks),
        "LOCAL_RANK": environ.get("SLURM_LOCALID", "0"),
        # srun is started from the job's first node
        "MASTER_ADDR": environ.get("SLURM_LAUNCH_NODE_IPADDR", "127.0.0.1"),
        "MASTER_PORT": str(20000 + int(environ.get("SLURM_JOB_ID", "0")) % 20000),
    }


def process_rank(environ: Mapping[str, str] = os.environ) -> int:
    """This process's rank: torch.distributed's RANK, else SLURM's task id in a SLURM job of
    several tasks, else 0. Known before Accelerate starts (Hydra's set-up needs it)."""
    return int({**environ, **env_from_slurm(environ)}.get("RANK", "0"))


def setup_from_slurm() -> None:
    os.environ.update(env_from_slurm(os.environ))
