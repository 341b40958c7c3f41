"""Where the Hydra config tree lives.

In a source checkout (editable install) it is `conf/` at the top of the repository, with
`conf/experiment` linking to `experiments/`; a wheel carries both inside the package
(`audioae/conf`, `audioae/conf/experiment`).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from audioae.distributed import process_rank
from audioae.errors import ConfigError
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


# Hydra's command-line options; after any of these but -m/-r Hydra itself answers (help, --cfg, ...)
_SWEEP_FLAGS = ("-m", "--multirun", "-r", "--run")
_NOISE = ("full_key:", "reference_type=", "object_type=", "Set the environment variable")


def check_overrides(args: list[str], max_compositions: int = 64) -> None:
    """Compose the train config with the command line's overrides before Hydra does, so that a
    typo is one line naming the override (Hydra prints several lines and exits 1): an unknown
    key (with the nearest existing ones), an unknown group option (with the available ones), a
    value of the wrong type, a parse error. With -m each value of a sweep is composed once.
    `hydra.*` overrides are left to Hydra. Raises ConfigError."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if any(a.startswith("-") and a not in _SWEEP_FLAGS for a in args):
        return  # --help, --cfg job, --info, -cn NAME ...: Hydra's own modes
    multirun = any(a in ("-m", "--multirun") for a in args)
    lines = [a for a in args if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except HydraException as e:
        raise ConfigError(f"cannot parse the overrides: {_flat(e)}") from None
    parsed = [o for o in parsed if not o.key_or_group.split(".")[0].startswith("hydra")]
    variants = [[o.input_line for o in parsed]]
    if multirun:
        variants = _sweep_variants(parsed)[:max_compositions]
    with initialize_config_dir(str(config_dir()), version_base=None):
        for overrides in variants:
            try:
                compose("train", overrides=overrides)
            except (HydraException, OmegaConfBaseException) as e:
                raise ConfigError(_explain(e, overrides, compose)) from None


def _sweep_variants(parsed) -> list[list[str]]:
    """Override lists that together use every value of every choice/range sweep once (the
    first values of the others); glob and interval sweeps are left to the sweeper."""
    values = []
    for o in parsed:
        if o.is_choice_sweep() or o.is_range_sweep():
            values.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        elif o.is_sweep_override():
            values.append([])  # not composable alone
        else:
            values.append([o.input_line])
    base = [v[0] for v in values if v]
    variants = [base]
    for i, vals in enumerate(values):
        for v in vals[1:]:
            variants.append([v if j == i else w[0] for j, w in enumerate(values) if w])
    return variants


def _explain(error: BaseException, overrides: list[str], compose) -> str:
    """One line from Hydra's error, with the nearest keys when a key does not exist."""
    import difflib

    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    cause = error.__cause__ or error
    message = _flat(error) if cause is error else f"{_flat(error)}: {_flat(cause)}"
    full_key = getattr(cause, "full_key", None)
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and full_key:
        parent, _, leaf = str(full_key).rpartition(".")
        bad = [o for o in overrides if o.lstrip("+~").split("=")[0].split("@")[0] == full_key]
        try:  # the config without the bad override: which keys would have been right
            cfg = compose("train", overrides=[o for o in overrides if o not in bad])
            node = OmegaConf.select(cfg, parent) if parent else cfg
            names = [str(k) for k in node] if isinstance(node, DictConfig) else []
        except Exception:
            names = []
        close = difflib.get_close_matches(leaf, names, n=3, cutoff=0.6)
        where = f"{parent}." if parent else ""
        hint = f"; did you mean {' or '.join(where + c for c in close)}?" if close else ""
        override = bad[0] if bad else full_key
        return f"{override}: there is no config key {full_key}{hint} (+{full_key}=... adds one)"
    return message


def _flat(error: BaseException) -> str:
    """Hydra's multi-line message as one line: the option lists joined, noise lines dropped."""
    parts, options = [], []
    for raw in str(error).splitlines():
        line = raw.strip()
        if line.startswith("Config search path"):
            break  # the compose API's list of config sources
        if not line or line.startswith(_NOISE):
            continue
        if raw.startswith("\t"):
            options.append(line)
            continue
        parts.append(line.removeprefix("In 'train': "))
    text = "; ".join(parts).rstrip(":")
    return f"{text}: {', '.join(options)}" if options else text
