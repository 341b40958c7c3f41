"""`audioae-convert`: stable-audio-tools model configs to audioae, and back.

audioae-convert model_config.json                        # one line of Hydra overrides
audioae-train $(audioae-convert model_config.json) data=audio_dir data.path=DIR
audioae-convert model_config.json --experiment NAME      # writes experiments/experiment/NAME.yaml
audioae-train $(audioae-convert model_config.json --experiment NAME) data=audio_dir data.path=DIR
audioae-convert model_config.json --dataset dataset_config.json  # plus data= and augment.*
audioae-convert --to-json outputs/DATE/TIME [--out model_config.json]

--experiment prints the overrides that select the preset: `hydra.searchpath=[file:///ABS/DIR]
experiment=NAME`, DIR being `--out` (default `./experiments`), since Hydra looks a preset up as
`experiment/NAME.yaml` under each folder of its search path.

Printed to a terminal, the overrides are quoted for pasting into a shell; captured (`$(...)`,
a pipe, a file) they are not, since the shell does not remove quotes from a substitution.
--quote / --no-quote force either.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import sys
import warnings
from pathlib import Path

from omegaconf import OmegaConf

from audioae.cli.common import STATUS, run_command
from audioae.errors import ConfigError
from audioae.files import check_new, check_writable, write_text

PROG = "audioae-convert"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, status 2, like every other failure
        self.exit(STATUS, f"{PROG}: {message} (see {PROG} --help)\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(
        prog=PROG,
        description="Convert a stable-audio-tools autoencoder model config (JSON) to audioae "
        "Hydra overrides or an experiment preset; or a trained run's config back to JSON.",
        epilog="audioae-train $(audioae-convert model_config.json) data=audio_dir data.path=DIR",
    )
    parser.add_argument("config", nargs="?", help="stable-audio-tools model config (.json)")
    parser.add_argument(
        "--experiment", metavar="NAME", help="write OUT/experiment/NAME.yaml (OUT: --out)"
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing preset or --to-json file"
    )
    parser.add_argument(
        "--lenient", action="store_true", help="drop unknown or unsupported keys with a warning"
    )
    parser.add_argument(
        "--dataset",
        metavar="JSON",
        help="also convert a stable-audio-tools dataset config: data and augment overrides",
    )
    parser.add_argument("--to-json", metavar="RUN", help="run folder or resolved config.yaml")
    parser.add_argument(
        "--out",
        metavar="PATH",
        help="--to-json: the JSON file (default stdout); --experiment: the folder to add to "
        "hydra.searchpath (default ./experiments)",
    )
    quoting = parser.add_mutually_exclusive_group()
    quoting.add_argument("--quote", dest="quote", action="store_true", default=None)
    quoting.add_argument("--no-quote", dest="quote", action="store_false")
    args = parser.parse_args(argv)
    if args.config is None and args.to_json is None:
        parser.error("give a model config (.json), or --to-json RUN")
    if args.config is not None and args.to_json is not None:
        parser.error("give a model config (.json) or --to-json RUN, not both")
    if args.to_json is None and args.out and not args.experiment:
        parser.error("--out goes with --to-json or --experiment")
    if args.to_json is not None and (args.experiment or args.lenient or args.dataset):
        parser.error("--experiment, --dataset and --lenient go with a model config, not --to-json")
    return args


def to_json(source: str, out: str | None, force: bool = False) -> None:
    from audioae import runs
    from audioae.convert import config_to_sat

    if out:
        check_writable(Path(out).parent)
        check_new([Path(out)], force)
    path = Path(source)
    path = path / runs.CONFIG if path.is_dir() else path
    if not path.is_file():
        raise ConfigError(f"{source}: no such run folder or config file")
    cfg = OmegaConf.load(path)
    if "defaults" in cfg or "encoder" not in cfg:
        raise ConfigError(
            f"{path}: not a resolved audioae train config (as a run folder's config.yaml)"
        )
    text = json.dumps(config_to_sat(cfg), indent=4) + "\n"
    if out:
        write_text(Path(out), text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def from_json(args: argparse.Namespace) -> None:
    from audioae.convert import convert, load_json, preset

    config = load_json(args.config)
    check_finite(config, args.config)
    if args.experiment:
        name = args.experiment
        root = Path(args.out or "experiments").absolute()
        target = root / "experiment" / f"{name}.yaml"
        check_preset_name(name, target)
    conversion = convert(config, args.config, args.lenient)
    if args.experiment:
        check_writable(root)
        check_new([target], args.force)
        overrides = [f"hydra.searchpath=[{searchpath_entry(root)}]", f"experiment={name}"]
    else:
        overrides = conversion.overrides
    if args.dataset:  # the data is given at train time: after the preset, never inside it
        from audioae.convert.sat_dataset import dataset_overrides

        dataset = load_json(args.dataset)
        check_finite(dataset, args.dataset)
        overrides = overrides + dataset_overrides(dataset, args.dataset, args.lenient)
    quote = sys.stdout.isatty() if args.quote is None else args.quote
    if not quote:
        spaced = [o for o in overrides if re.search(r"\s", o)]
        if spaced:
            raise ConfigError(
                f"{spaced[0]!r} contains whitespace, which $(...) would split; use --quote"
                + ("" if args.experiment else " or --experiment NAME")
            )
    if args.experiment:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text(target, preset(conversion, name))
        print(f"wrote {target}", file=sys.stderr)
    print(" ".join(shlex.quote(o) if quote else o for o in overrides))


def check_preset_name(name: str, target: Path) -> None:
    """A name a preset written to `target` can have: a file name Hydra's override grammar
    takes, and not a built-in preset's, which Hydra finds first in its search path
    (`experiment=NAME` would select it), unless `target` is that built-in file (regenerating
    it)."""
    from audioae.config import config_dir

    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise ConfigError(f"--experiment {name}: use letters, digits, '_' and '-' only")
    presets = config_dir() / "experiment"
    builtin = sorted(p.stem for p in presets.glob("*.yaml"))
    if name in builtin and target.resolve() != (presets / f"{name}.yaml").resolve():
        raise ConfigError(
            f"--experiment {name}: a built-in preset has that name and experiment={name} would "
            f"select it, not yours; choose another name (built-in: {', '.join(builtin)}; "
            f"--out {config_dir()} regenerates the built-in one)"
        )


def check_finite(tree, source: str, path: str = "") -> None:
    """Refuse NaN and infinities (which Python's JSON reader accepts) anywhere in a config,
    naming the key: no training value can be one."""
    if isinstance(tree, float) and not math.isfinite(tree):
        raise ConfigError(
            f"{source}: {path or 'the top level'}: {json.dumps(tree)} is not a finite number; "
            "use a finite number (NaN and Infinity are not valid JSON numbers)"
        )
    if isinstance(tree, dict):
        for key, value in tree.items():
            check_finite(value, source, f"{path}.{key}" if path else str(key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            check_finite(value, source, f"{path}[{i}]")


def searchpath_entry(folder: Path) -> str:
    """`folder` as an element of the `hydra.searchpath` list: unquoted where Hydra's override
    grammar allows, else in double quotes."""
    url = f"file://{folder}"
    if re.fullmatch(r"[A-Za-z0-9_/.:+@%-]+", url):
        return url
    if re.search(r'["\\$]', url):
        raise ConfigError(
            f"--out {folder}: a path with '\"', '\\' or '$' cannot be a Hydra search path"
        )
    return f'"{url}"'


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_command(PROG, lambda: convert_with_warnings(args))


def convert_with_warnings(args: argparse.Namespace) -> None:
    """to_json or from_json; the converter's warnings are printed as `PROG: warning: ...`
    lines (before an error, if one follows)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if args.to_json:
                to_json(args.to_json, args.out, args.force)
            else:
                from_json(args)
        finally:
            from audioae.convert import SATConversionWarning

            for warning in caught:
                if issubclass(warning.category, SATConversionWarning):
                    print(f"{PROG}: warning: {warning.message}", file=sys.stderr)


if __name__ == "__main__":
    main()
