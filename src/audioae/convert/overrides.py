"""Hydra overrides: the few that turn audioae's composed defaults into a wanted config.

`delta(choices, wanted)` composes the train config with the group choices, compares every wanted
value with it and keeps an override only where they differ (an interpolated value such as the
decoder's `${encoder.channels}` counts as equal when it will resolve to the wanted value). It
then composes the result and checks every wanted value, so the overrides are exact, not merely
small. The result renders as command-line overrides or as an experiment preset.

Nodes given as dicts are exact: keys the defaults have beyond the wanted ones are removed
(`~path` then `+path.key=...`; in a preset, the group is reset with `override /group: null`
and written whole, since a YAML merge cannot remove keys).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from audioae.config import config_dir
from audioae.errors import ConfigError

_ABSENT: Any = object()
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_INTERP = re.compile(r"^\$\{([A-Za-z0-9_.]+)\}$")


def compose_train(overrides: Iterable[str]) -> DictConfig:
    """The train config as `audioae-train OVERRIDES...` composes it (also inside a Hydra app)."""
    saved = GlobalHydra.instance().hydra  # an enclosing Hydra app or initialize()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_dir()), version_base=None):
            return compose("train", overrides=list(overrides))
    finally:  # initialize_config_dir restores the singleton it found: the cleared one
        GlobalHydra.instance().hydra = saved


def format_value(value: Any) -> str:
    """A value in Hydra's override grammar: 1e-06, true, null, [4,4,8,8], {alpha:1.0}, 'a b'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if _BARE.match(value) and value.lower() not in {"true", "false", "null", "nan", "inf"}:
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as a Hydra override")


def same(a: Any, b: Any) -> bool:
    """Equal as config values: lists and tuples alike, but a bool never equals a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list | tuple | Mapping) or isinstance(b, list | tuple | Mapping):
        return False
    return a == b


def lookup(tree: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(tree, Mapping) or part not in tree:
            return _ABSENT
        tree = tree[part]
    return tree


@dataclass
class Delta:
    """Overrides from the defaults to a wanted config, and that config."""

    choices: dict[str, str]
    ops: list[tuple[str, str, Any]] = field(default_factory=list)  # (op, path, value)
    replaced: set[str] = field(default_factory=set)  # groups whose node is replaced whole
    cfg: DictConfig | None = None

    def overrides(self) -> list[str]:
        lines = [f"{group}={choice}" for group, choice in self.choices.items()]
        for op, path, value in self.ops:
            if op == "del":
                lines.append(f"~{path}")
            elif op == "merge":  # keys Hydra's grammar cannot address (e.g. "vq/commitment_loss")
                lines.append(f"{path}={format_value(value)}")
            else:
                lines.append(f"{'+' if op == 'add' else ''}{path}={format_value(value)}")
        return lines

    def experiment(self, header: str) -> str:
        """An experiment preset (`# @package _global_`) equivalent to `overrides()`."""
        choices = dict(self.choices)
        if "encoder" in self.replaced:  # train.yaml's `decoder: ${encoder}` needs a name
            choices.setdefault("decoder", choices["encoder"])
        defaults = [
            {f"override /{group}": None if group in self.replaced else choice}
            for group, choice in choices.items()
        ]
        defaults += [{f"override /{g}": None} for g in sorted(self.replaced - set(self.choices))]
        body: dict[str, Any] = {}
        for op, path, value in self.ops:
            if op == "del" or path.split(".")[0] in self.replaced:
                continue
            node = body
            *heads, last = path.split(".")
            for part in heads:
                node = node.setdefault(part, {})
            if op == "merge":
                node.setdefault(last, {}).update(value)
            else:
                node[last] = value
        for group in sorted(self.replaced):
            body[group] = OmegaConf.to_container(self.cfg[group], resolve=False)
        text = "# @package _global_\n" + "".join(f"# {line}\n" for line in header.splitlines())
        text += "defaults:\n" + "".join(
            f"  - {key}: {'null' if choice is None else choice}\n"
            for entry in defaults
            for key, choice in entry.items()
        )
        return text + ("\n" + _dump(body) if body else "")


def delta(choices: Mapping[str, str], wanted: Mapping[str, Any]) -> Delta:
    """The overrides that give `wanted` (dotted path -> value) on top of `choices`."""
    result = Delta(dict(choices))
    base, raw = _defaults(tuple(result.overrides()))

    def unchanged(path: str, value: Any) -> bool:
        have = lookup(raw, path)
        match = _INTERP.match(have) if isinstance(have, str) else None
        if match and match.group(1) in wanted:  # e.g. decoder.channels: ${encoder.channels}
            return same(wanted[match.group(1)], value)
        if have is _ABSENT:  # the constructor's default applies
            return same(signature_default(raw, path), value)
        return same(resolve(base, path), value)

    def emit(path: str, value: Any) -> None:
        have = lookup(raw, path)
        if isinstance(value, Mapping) and isinstance(have, str):  # an interpolated node
            if not unchanged(path, value):
                result.ops.append(("set", path, dict(value)))
        elif isinstance(value, Mapping):
            if have is _ABSENT or have is None:
                if not value:
                    result.ops.append(("set" if have is not _ABSENT else "add", path, {}))
                for key, sub in _leaves(path, value):
                    result.ops.append(("add", key, sub))
            elif set(have) - set(value):
                result.ops.append(("del", path, None))
                result.replaced.add(path.split(".")[0])
                result.ops += [("add", key, sub) for key, sub in _leaves(path, value)]
                if not value:
                    result.ops.append(("add", path, {}))
            else:
                for key, sub in value.items():
                    if _KEY.match(str(key)):
                        emit(f"{path}.{key}", sub)
                    elif not same(have.get(key, _ABSENT), sub):
                        result.ops.append(("merge", path, {key: sub}))
        elif not unchanged(path, value):
            result.ops.append(("add" if have is _ABSENT else "set", path, value))

    for path, value in wanted.items():
        emit(path, value)
    for _ in range(3):  # interpolations the first pass could not foresee
        result.cfg = compose_train(result.overrides())
        final = OmegaConf.to_container(result.cfg, resolve=False)
        wrong = [
            (p, v)
            for p, v in wanted.items()
            if not same(
                resolve(result.cfg, p)
                if lookup(final, p) is not _ABSENT
                else signature_default(final, p),
                v,
            )
        ]
        if not wrong:
            return result
        result.ops += [("set", p, v) for p, v in wrong if not isinstance(v, Mapping)]
    raise ConfigError(f"internal error: the overrides do not give {wrong[0][0]}={wrong[0][1]}")


@lru_cache(maxsize=16)
def _defaults(choices: tuple[str, ...]) -> tuple[DictConfig, dict]:
    """The composed defaults for some group choices (read only), unresolved as a dict too."""
    base = compose_train(choices)
    return base, OmegaConf.to_container(base, resolve=False)


def resolve(cfg: DictConfig, path: str) -> Any:
    """The resolved value at `path` as plain Python (None where it cannot resolve)."""
    value = OmegaConf.select(cfg, path, throw_on_resolution_failure=False)
    if isinstance(value, DictConfig | ListConfig):
        try:
            return OmegaConf.to_container(value, resolve=True)
        except Exception:
            return None
    return value


def signature_default(tree: Any, path: str) -> Any:
    """For a key absent from a `_target_` node: the default of that constructor argument."""
    parent, _, name = path.rpartition(".")
    node = lookup(tree, parent) if parent else tree
    target = node.get("_target_") if isinstance(node, Mapping) else None
    if not isinstance(target, str):
        return _ABSENT
    try:
        params = inspect.signature(get_object(target)).parameters
    except Exception:
        return _ABSENT
    if name not in params or params[name].default is inspect.Parameter.empty:
        return _ABSENT
    default = params[name].default
    return list(default) if isinstance(default, tuple) else default


def _leaves(path: str, value: Mapping) -> Iterator[tuple[str, Any]]:
    for key, sub in value.items():
        if isinstance(sub, Mapping) and sub:
            yield from _leaves(f"{path}.{key}", sub)
        else:
            yield f"{path}.{key}", sub


class _Dumper(yaml.SafeDumper):
    """Block mappings, flow lists of scalars ([4, 4, 8, 8]), keys in insertion order."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(v, dict) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(tuple, _represent_list)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
