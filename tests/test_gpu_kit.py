"""bench/gpu_kit.py's requirement checker on a fake machine and fake wheels (no network, no kit):
a missing package and an unmet specifier are named, markers are evaluated for CPython 3.12 on
Linux x86_64, extras are followed only where asked for, and two versions of one package, a
torch wheel or a wheel for another Python are refused."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_kit", ROOT / "bench/gpu_kit.py")
gpu_kit = importlib.util.module_from_spec(spec)
sys.modules["gpu_kit"] = gpu_kit
spec.loader.exec_module(gpu_kit)

MACHINE = {"torch": "2.11.0+cu130", "numpy": "2.5.2", "protobuf": None}


def wheel(folder: Path, name: str, version: str, requires=(), tag="py3-none-any", py=None):
    """A wheel file holding only its METADATA."""
    path = folder / f"{name.replace('-', '_')}-{version}-{tag}.whl"
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    lines += [f"Requires-Python: {py}"] if py else []
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", "\n".join(lines))
    return path


def dist(name, version, *requires, flags=()):
    return gpu_kit.Dist(name, version, list(requires), flags=set(flags), source=f"{name}.whl")


def run(roots, *layers, machine=MACHINE, waived=None):
    return gpu_kit.check_requirements(roots, list(layers), machine, waived=waived or {})


def test_met_through_the_kit_and_the_machine():
    site = {
        "hydra-core": dist("hydra-core", "1.3.8", "omegaconf>=2.2,<2.4"),
        "omegaconf": dist("omegaconf", "2.3.1", "numpy>=1.20", "PyYAML>=5.1"),
    }
    problems, notes = run(
        ["hydra-core>=1.3", "torch>=2.1"], site, machine={**MACHINE, "pyyaml": None}
    )
    assert problems == []
    # a specifier on a machine package whose version is not recorded is said, not failed
    assert notes == [
        "unverified: PyYAML>=5.1 (required by omegaconf): the machine's version is not recorded"
    ]


def test_missing_package_is_named_with_who_needs_it():
    site = {"librosa": dist("librosa", "0.11.0", "soxr>=0.3.2", "numpy>=1.22")}
    problems, _ = run(["librosa"], site)
    assert problems == ["missing: soxr>=0.3.2 (required by librosa)"]


def test_unmet_specifier_is_named_kit_and_machine():
    site = {"vqp": dist("vqp", "1.34.0")}
    problems, _ = run(["vqp>=1.14,<1.34", "numpy<2"], site)
    assert problems == [
        "unmet: vqp<1.34,>=1.14 (required by the roots): vqp 1.34.0 (vqp.whl)",
        "unmet: numpy<2 (required by the roots): numpy 2.5.2 (the machine)",
    ]


def test_waiver_turns_an_unmet_specifier_into_a_note():
    site = {"tools": dist("tools", "0.7.2", "numpy<2")}
    problems, notes = run(["tools"], site, waived={("tools", "numpy"): "runs with numpy 2"})
    assert problems == []
    assert notes == ["waived: numpy<2 (required by tools), 2.5.2 there: runs with numpy 2"]


def test_markers_evaluated_for_cp312_linux_x86_64():
    site = {
        "pkg": dist(
            "pkg",
            "1.0",
            'tomli>=1; python_version < "3.11"',  # not on 3.12
            'pywin32; sys_platform == "win32"',  # not on Linux
            'backport; python_version >= "3.12" and platform_machine == "x86_64"',  # needed
        )
    }
    problems, _ = run(["pkg"], site)
    assert problems == [
        'missing: backport; python_version >= "3.12" and platform_machine == "x86_64" '
        "(required by pkg)"
    ]


def test_extras_followed_only_when_required():
    site = {
        "pkg": dist("pkg", "1.0", "numpy", 'sphinx; extra == "docs"', 'aiohttp; extra == "http"')
    }
    assert run(["pkg"], site)[0] == []
    problems, _ = run(["pkg[http]"], site)
    assert problems == ['missing: aiohttp; extra == "http" (required by pkg)']


def test_nodeps_and_layers_first_wins():
    sat = {
        "sat": dist("sat", "0.0.20", "gradio==6.3.0", "torch==2.7.1", flags={"nodeps"}),
        "vqp": dist("vqp", "1.14.41", "torch>=1.6"),
    }
    site = {"vqp": dist("vqp", "1.32.0", "torch>=2.0")}
    # sat's own pins are not followed; vqp comes from the first layer, as on a path
    assert run(["sat", "vqp==1.14.41"], sat, site)[0] == []
    assert run(["vqp==1.14.41"], site, sat)[0] != []


def test_kit_refuses_two_versions_torch_wrong_tag_and_unlisted(tmp_path, monkeypatch):
    wheels, sat = tmp_path / "wheels", tmp_path / "sat_wheels"
    wheels.mkdir()
    sat.mkdir()
    wheel(wheels, "einx", "0.4.3", ["numpy"])
    wheel(wheels, "einx", "0.4.2", ["numpy"])
    wheel(wheels, "torch", "2.14.1", tag="cp312-cp312-manylinux_2_28_x86_64")
    wheel(wheels, "cffi", "2.1.1", tag="cp311-cp311-manylinux_2_17_x86_64")
    wheel(sat, "sat", "0.0.20", ["gradio"], py="<3.11,>=3.10")
    lock = {
        "site": {"einx": dist("einx", "0.4.3"), "cffi": dist("cffi", "2.1.1")},
        "sat": {"sat": dist("sat", "0.0.20", flags={"nodeps"})},
    }
    layers, problems = gpu_kit.kit_layers(tmp_path, lock)
    text = "\n".join(problems)
    assert "two versions of einx" in text
    assert "torch-2.14.1-cp312-cp312-manylinux_2_28_x86_64.whl: torch/CUDA wheels are never" in text
    assert "cffi-2.1.1-cp311-cp311-manylinux_2_17_x86_64.whl: no tag for CPython 3.12" in text
    assert "torch-2.14.1-cp312-cp312-manylinux_2_28_x86_64.whl: not in gpu_kit.txt [site]" in text
    assert "Requires-Python" not in text  # sat is nodeps: installed with --ignore-requires-python
    assert layers["sat"]["sat"].requires == ["gradio"]
    assert layers["site"]["einx"].version in {"0.4.2", "0.4.3"}


def test_lock_and_machine_files_parse(tmp_path):
    lock = tmp_path / "kit.txt"
    lock.write_text("# c\n[site]\neinx==0.4.3\n[sat]\nsat==0.0.20 nodeps  # why\n")
    parsed = gpu_kit.read_lock(lock)
    assert parsed["sat"]["sat"].flags == {"nodeps"} and parsed["site"]["einx"].version == "0.4.3"
    lock.write_text("[site]\neinx==0.4.3\nEinx==0.4.2\n")
    with pytest.raises(SystemExit, match="twice"):
        gpu_kit.read_lock(lock)
    machine = tmp_path / "m.txt"
    machine.write_text("# c\ntorch==2.11.0+cu130\nPyYAML\n")
    assert gpu_kit.read_machine(machine) == {"torch": "2.11.0+cu130", "pyyaml": None}


def test_committed_lists_parse_and_carry_no_machine_package():
    lock, machine = gpu_kit.read_lock(), gpu_kit.read_machine()
    assert machine["torch"].startswith("2.11")
    assert not [k for k in lock["site"] if k in machine]
    assert all(
        "override" in lock["sat"][k].flags for k in lock["sat"] if k in machine or k in lock["site"]
    )
