"""Where the Hydra config tree lives.

In a source checkout (editable install) it is `conf/` at the top of the repository, with
`conf/experiment` linking to `experiments/`; a wheel carries both inside the package
(`audioae/conf`, `audioae/conf/experiment`).
"""

from __future__ import annotations

from pathlib import Path

from audioae.schema import register

PACKAGE = Path(__file__).resolve().parent
register()  # the schema that conf/train.yaml names in its defaults


def config_dir() -> Path:
    installed = PACKAGE / "conf"
    if (installed / "train.yaml").exists():
        return installed
    return PACKAGE.parents[1] / "conf"
