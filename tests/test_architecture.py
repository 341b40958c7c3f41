"""The import rule of docs/architecture.md: components never import upward.

Files under nets/, bottlenecks/, pretransforms/, losses/, discriminators/ and data/ are given
what they need (a pretransform gets a built model); they import nothing from the layers that
assemble, train or run them: train/, inference/, cli/, build.py. Imports inside functions count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "audioae"
COMPONENTS = ("nets", "bottlenecks", "pretransforms", "losses", "discriminators", "data")
UPPER = ("audioae.train", "audioae.inference", "audioae.cli", "audioae.build")


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, module) of every import in the file (of `package`), at any depth; relative
    imports resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.append((node.lineno, base))
            # `from audioae import build` names a module too
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def upward(module: str) -> bool:
    return any(module == up or module.startswith(up + ".") for up in UPPER)


def component_files() -> list[Path]:
    return sorted(f for c in COMPONENTS for f in (PACKAGE / c).rglob("*.py"))


def test_every_component_layer_is_checked():
    assert {f.relative_to(PACKAGE).parts[0] for f in component_files()} == set(COMPONENTS)


@pytest.mark.parametrize("path", component_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_components_never_import_upward(path):
    imports = imported_modules(path, package_of(path))
    bad = [f"line {line}: {module}" for line, module in imports if upward(module)]
    assert not bad, f"{path.relative_to(PACKAGE)} imports upward: {', '.join(bad)}"


def test_the_check_sees_imports_inside_functions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from audioae.build import build\n    from .. import cli\n")
    modules = [m for _, m in imported_modules(probe, "audioae.nets")]
    assert "audioae.build" in modules and "audioae.cli" in modules
