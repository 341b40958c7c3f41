"""Where the Hydra config tree lives.

In a source checkout (editable install) it is `conf/` at the top of the repository, with
`conf/experiment` linking to `experiments/`; a wheel carries both inside the package
(`audioae/conf`, `audioae/conf/experiment`).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from audioae.distributed import process_rank
from audioae.schema import register

PACKAGE = Path(__file__).resolve().parent
register()  # the schema that conf/train.yaml names in its defaults
# `${if_rank0:VALUE}`: VALUE on the first process, null on the others. conf/train.yaml sets
# hydra.output_subdir with it: every SLURM task of a submitit job runs Hydra's job set-up, and
# only rank 0 may write the run folder's .hydra/.
OmegaConf.register_new_resolver(
    "if_rank0", lambda value: value if process_rank() == 0 else None, replace=True
)


def config_dir() -> Path:
    installed = PACKAGE / "conf"
    if (installed / "train.yaml").exists():
        return installed
    return PACKAGE.parents[1] / "conf"
