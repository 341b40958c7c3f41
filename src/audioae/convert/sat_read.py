"""Reading a stable-audio-tools model config against the tables of sat_schema.py.

Every error is a ConfigError naming the JSON path and the file; under --lenient, unknown and
unsupported keys become one SATConversionWarning each.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, NoReturn

from audioae.convert import sat_schema as S
from audioae.convert.overrides import same
from audioae.errors import ConfigError

KINDS = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "number": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "mapping": (lambda v: isinstance(v, dict), "an object"),
    "ints": (
        lambda v: isinstance(v, list) and all(KINDS["int"][0](x) for x in v),
        "a list of integers",
    ),
    "pairs": (
        lambda v: (
            isinstance(v, list)
            and all(
                isinstance(x, list) and len(x) == 2 and all(KINDS["number"][0](y) for y in x)
                for x in v
            )
        ),
        "a list of [low, high] pairs",
    ),
    "any": (lambda v: True, "any value"),
}


class SATConversionWarning(UserWarning):
    """A stable-audio-tools key dropped (--lenient) or ignored as stable-audio-tools does."""


class Reader:
    """Typed access to the JSON; every error names the JSON path and the file."""

    def __init__(self, source: str, lenient: bool):
        self.source, self.lenient = source, lenient
        self.notes: dict[str, str] = {}

    def fail(self, path: str, message: str) -> NoReturn:
        raise ConfigError(f"{self.source}: {path}: {message}")

    def warn(self, path: str, message: str) -> None:
        self.notes[path] = message
        warnings.warn(SATConversionWarning(f"{self.source}: {path}: {message}"), stacklevel=4)

    def unsupported(self, path: str, message: str) -> None:
        if not self.lenient:
            self.fail(path, f"{message} (--lenient drops it)")
        self.warn(path, f"{message}; dropped (--lenient)")

    def mapping(self, node: Any, path: str, allowed) -> dict:
        """`node` as a dict; unknown keys are unsupported (dropped under --lenient)."""
        self.check(node, "mapping", path or "(top level)")
        for key in node:
            if key not in allowed:
                listed = ", ".join(allowed) if allowed else "none"
                at = f"{path}.{key}" if path else key
                self.unsupported(at, f"unknown key; supported: {listed}")
        return {key: value for key, value in node.items() if key in allowed}

    def get(self, node: dict, key: str, path: str, kind: str, default: Any = S.REQUIRED) -> Any:
        full = f"{path}.{key}" if path else key
        if key not in node:
            if default is S.REQUIRED:
                self.fail(full, "missing required key")
            return default
        self.check(node[key], kind, full)
        return node[key]

    def check(self, value: Any, kind: str, path: str) -> None:
        optional = kind.endswith("?")
        test, wanted = KINDS[kind.rstrip("?")]
        if not (test(value) or (optional and value is None)):
            got = json.dumps(value)
            got = got if len(got) < 40 else got[:37] + "..."
            self.fail(path, f"expected {wanted}{' or null' if optional else ''}, got {got}")


def load_json(path: str | Path) -> dict:
    """Read a model config, reporting unreadable files and invalid JSON as one line."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a JSON object (a model config) at the top level")
    return config


def read_type(r: Reader, node: dict, path: str, table: dict, known: set) -> S.Component:
    kind = r.get(node, "type", path, "str")
    if kind in known:
        r.fail(
            f"{path}.type", f"{kind!r} is not supported by audioae; supported: {', '.join(table)}"
        )
    if kind not in table:
        r.fail(f"{path}.type", f"unknown type {kind!r}; supported: {', '.join(table)}")
    return table[kind]


def read_component(
    r: Reader, spec: S.Component, config: Any, path: str, wanted: dict, checks: list
):
    """Map one `config` by its table; returns the config as read (for the ratios)."""
    config = r.mapping(config, path, tuple(spec.keys))
    for name, key in spec.keys.items():
        at = f"{path}.{name}"
        if key.injected:
            if name in config:
                r.fail(
                    at,
                    "set by stable-audio-tools itself (it would fail with a duplicate "
                    "argument); remove it",
                )
            continue
        value = r.get(config, name, path, key.kind, key.default)
        if key.noop:
            if not same(value, key.default):
                r.unsupported(at, f"only {json.dumps(key.default)} is supported")
            elif name in config:
                r.notes[at] = "its default, which changes nothing"
        elif key.derived:
            if spec.choice == "fsq" and value is None:  # FSQ's dim: len(levels) * num_codebooks
                value = len(config["levels"]) * config.get("num_codebooks", 1)
            checks.append((key.derived, value, at, name not in config))
        elif key.values is not None and value not in key.values:
            supported = ", ".join(json.dumps(v) for v in key.values)
            r.unsupported(at, f"{json.dumps(value)} is not supported; supported: {supported}")
        else:
            value = key.values[value] if key.values is not None else value
            wanted[f"{spec.group}.{key.to}"] = list(reversed(value)) if key.reverse else value
    for name, value in spec.fixed.items():
        wanted[f"{spec.group}.{name}"] = value
    return config
