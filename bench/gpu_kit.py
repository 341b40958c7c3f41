"""The GPU kit (issue 33): what a lent GPU machine without network needs to run
bench/gpu_checks.sh, prepared and checked on this CPU machine.

    python bench/gpu_kit.py prepare        # wheels and trimmed data into bench/cache/gpu_kit/
    python bench/gpu_kit.py check          # every requirement met by the kit or the machine
    python bench/gpu_kit.py install DIR    # (gpu_checks.sh) the wheels into DIR/site, DIR/sat
    python bench/gpu_kit.py check --installed DIR   # the same proof against what DIR holds

The kit (git-ignored) holds `wheels/` (bench/gpu_kit.txt's [site]: audioae's run-time needs
that the machine lacks), `sat_wheels/` ([sat]: stable-audio-tools 0.0.20 and what its
autoencoder trainer needs, a second install directory that only the SAT side puts first on its
path, so that its vector-quantize-pytorch 1.14.41 and audioae's 1.32 never meet) and `data/`, a
trimmed copy of bench/real_audio.py's set. Wheels are for CPython 3.12 on manylinux x86_64
(the machine: bench/gpu_machine_packages.txt); packages published only as sdists are built
into wheels here. `check` reads every carried wheel's METADATA and follows Requires-Dist,
markers evaluated for CPython 3.12.3 on Linux x86_64, extras followed only where a requirement
names them; it fails naming a missing package, an unmet specifier, two versions of one package,
a wheel the machine cannot install, or a torch/CUDA wheel (the machine's torch is the one used).
"""

from __future__ import annotations

import argparse
import email.parser
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import compatible_tags, cpython_tags, sys_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT / "bench/cache/gpu_kit"
LOCK = ROOT / "bench/gpu_kit.txt"
MACHINE = ROOT / "bench/gpu_machine_packages.txt"
REAL = ROOT / "bench/cache/real_audio"
SECTIONS = {"site": "wheels", "sat": "sat_wheels"}  # lock section -> kit folder
LIMIT = 64 * 2**20  # what a device call carries, the repository included
PYTHON = "3.12.3"
# PEP 508 environment of the GPU machine
TARGET = {
    **default_environment(),
    "implementation_name": "cpython",
    "implementation_version": PYTHON,
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": PYTHON,
    "python_version": "3.12",
    "sys_platform": "linux",
}
# glibc 2.39 (Ubuntu 24.04, whose Python is 3.12.3) down to the oldest manylinux
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in range(39, 4, -1)]
PLATFORMS += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
TARGET_TAGS = {
    *cpython_tags((3, 12), ["cp312"], PLATFORMS),
    *compatible_tags((3, 12), "cp312", PLATFORMS),
}
NEVER = {"torch", "torchaudio", "torchvision", "triton"}  # the machine's own, and nvidia-*, cuda-*
# Specifiers known to be unmet, and why that is fine. Keys: (required by, package).
WAIVED = {
    ("descript-audiotools", "protobuf"): "audiotools pins protobuf<3.20 but runs with the newer "
    "protobuf that onnx needs; audioae's venv runs it so too (pyproject.toml, `make setup`)",
}


def fail(message: str) -> None:
    sys.exit(f"gpu_kit: {message}")


@dataclass
class Dist:
    """One distribution: carried as a wheel, or installed (`requires` from its METADATA)."""

    name: str
    version: str
    requires: list[str] = field(default_factory=list)
    requires_python: str | None = None
    flags: set[str] = field(default_factory=set)
    source: str = ""  # the wheel's file name or the install folder


def read_lock(path: Path = LOCK) -> dict[str, dict[str, Dist]]:
    """bench/gpu_kit.txt -> {section: {canonical name: Dist}}; refuses two versions of one name."""
    lock: dict[str, dict[str, Dist]] = {}
    section = None
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#")[0].strip()
        if not line:
            continue
        if line.startswith("["):
            section = line.strip("[]")
            if section not in SECTIONS:
                fail(f"{path.name}:{n}: unknown section [{section}]")
            lock.setdefault(section, {})
            continue
        spec, *flags = line.split()
        name, sep, version = spec.partition("==")
        if section is None or not sep or not version:
            fail(f"{path.name}:{n}: expected `name==version [flags]` inside a [section]: {raw}")
        key = canonicalize_name(name)
        if key in lock[section]:
            fail(f"{path.name}:{n}: {name} twice in [{section}]")
        lock[section][key] = Dist(name, version, flags=set(flags))
    return lock


def read_machine(path: Path = MACHINE) -> dict[str, str | None]:
    """bench/gpu_machine_packages.txt -> {canonical name: version or None (not recorded)}."""
    machine: dict[str, str | None] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            machine[canonicalize_name(name)] = version or None
    return machine


def wheel_dist(path: Path, flags: set[str] | None = None) -> Dist:
    """A wheel's name, version, Requires-Dist and Requires-Python, from its METADATA."""
    with zipfile.ZipFile(path) as zf:
        meta = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if len(meta) != 1:
            fail(f"{path.name}: no single .dist-info/METADATA")
        msg = email.parser.Parser().parsestr(zf.read(meta[0]).decode())
    return Dist(
        msg["Name"],
        msg["Version"],
        msg.get_all("Requires-Dist") or [],
        msg["Requires-Python"],
        flags or set(),
        path.name,
    )


def wheel_problems(path: Path) -> list[str]:
    """Why the machine could not install this wheel (empty: it can)."""
    name, _, _, tags = parse_wheel_filename(path.name)
    problems = []
    if not tags & TARGET_TAGS:
        found = ", ".join(sorted(str(t) for t in tags))
        problems.append(f"{path.name}: no tag for CPython 3.12 manylinux x86_64 ({found})")
    if name in NEVER or name.startswith(("nvidia-", "cuda-")):
        problems.append(
            f"{path.name}: torch/CUDA wheels are never carried (the machine's are used)"
        )
    return problems


def check_requirements(
    roots: list[str],
    layers: list[dict[str, Dist]],
    machine: dict[str, str | None],
    env: dict[str, str] | None = None,
    waived: dict[tuple[str, str], str] | None = None,
) -> tuple[list[str], list[str]]:
    """Follow `roots` (requirement strings) through `layers` (first match wins, as on a path),
    then `machine` (not followed further: its packages are installed with their needs).
    Returns (problems, notes): a missing package, an unmet specifier; notes list the waived and
    the unverifiable (a specifier on a machine package whose version is not recorded)."""
    env = TARGET if env is None else env
    waived = WAIVED if waived is None else waived
    problems: list[str] = []
    notes: list[str] = []
    queue = [(Requirement(r), "the roots") for r in roots]
    done: set[tuple[str, str]] = set()
    while queue:
        req, parent = queue.pop(0)
        key = canonicalize_name(req.name)
        what = f"{req} (required by {parent})"
        provider = next((layer[key] for layer in layers if key in layer), None)
        version = provider.version if provider else machine.get(key)
        if provider is None and key not in machine:
            problems.append(f"missing: {what}")
            continue
        if version is None:
            if req.specifier:
                notes.append(f"unverified: {what}: the machine's version is not recorded")
        elif not req.specifier.contains(Version(version), prereleases=True):
            reason = waived.get((canonicalize_name(parent), key))
            where = provider.source if provider else "the machine"
            if reason:
                notes.append(f"waived: {what}, {version} there: {reason}")
            else:
                problems.append(f"unmet: {what}: {req.name} {version} ({where})")
        if provider is None or "nodeps" in provider.flags:
            continue
        for extra in ["", *sorted(req.extras)]:
            if (key, extra) in done:
                continue
            done.add((key, extra))
            for line in provider.requires:
                sub = Requirement(line)
                base = sub.marker is None or sub.marker.evaluate({**env, "extra": ""})
                if extra:  # only what this extra adds to the base requirements
                    if base or not sub.marker.evaluate({**env, "extra": extra}):
                        continue
                elif not base:
                    continue
                queue.append((sub, provider.name))
    return problems, notes


def kit_layers(kit: Path, lock: dict[str, dict[str, Dist]]) -> tuple[dict, list[str]]:
    """{section: {name: Dist}} read from the kit's wheels, and what disagrees with the lock."""
    layers: dict[str, dict[str, Dist]] = {}
    problems = []
    for section, folder in SECTIONS.items():
        layer = layers.setdefault(section, {})
        wanted = lock.get(section, {})
        for path in sorted((kit / folder).glob("*.whl")):
            dist = wheel_dist(path)
            key = canonicalize_name(dist.name)
            problems += wheel_problems(path)
            if key in layer:
                problems.append(
                    f"two versions of {dist.name} in {folder}/: {layer[key].source}, {path.name}"
                )
                continue
            entry = wanted.get(key)
            if entry is None:
                problems.append(f"{folder}/{path.name}: not in {LOCK.name} [{section}]")
            elif Version(entry.version) != Version(dist.version):
                problems.append(
                    f"{folder}/{path.name}: {LOCK.name} says {entry.name}=={entry.version}"
                )
            else:
                dist.flags = entry.flags
            req_py = dist.requires_python
            if req_py and not SpecifierSet(req_py).contains(PYTHON) and "nodeps" not in dist.flags:
                problems.append(f"{folder}/{path.name}: Requires-Python {req_py} excludes {PYTHON}")
            layer[key] = dist
        for key, entry in wanted.items():
            if key not in layer:
                problems.append(f"{entry.name}=={entry.version}: no wheel in {folder}/ (prepare)")
    return layers, problems


def roots_of_audioae() -> list[str]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"]


def prove(
    layers: dict[str, dict[str, Dist]], machine: dict[str, str | None], static: bool = True
) -> list[str]:
    """Check audioae's side ([site]) and SAT's ([sat] ahead of [site]); print the notes; return
    the problems. `static`: the machine is the recorded list, which the kit must not shadow."""
    site, sat = layers.get("site", {}), layers.get("sat", {})
    problems, notes = check_requirements(roots_of_audioae(), [site], machine)
    sat_roots = [f"{d.name}=={d.version}" for d in sat.values()]
    more, sat_notes = check_requirements(sat_roots, [sat, site], machine)
    problems += [f"[sat] {p}" for p in more]
    notes += [f"[sat] {n}" for n in sat_notes]
    for key, dist in sat.items():
        if "override" not in dist.flags and (key in site or key in machine):
            problems.append(
                f"[sat] {dist.name}: also in [site] or on the machine; flag it override"
            )
    for key, dist in site.items():
        if static and key in machine and "override" not in dist.flags:
            problems.append(
                f"{dist.name}: the machine has it ({machine[key] or 'version not recorded'})"
            )
    unverified = sorted(
        {n.split(": ")[1].split(" (")[0] for n in notes if n.startswith(("unv", "[sat] unv"))}
    )
    for note in sorted({n for n in notes if "unverified:" not in n}):
        print(f"  note: {note}")
    if unverified:
        print("  unverified (the machine's version is not recorded; `check --installed` on the "
              f"machine proves them): {'; '.join(unverified)}")  # fmt: skip
    return problems


def check(args) -> None:
    machine = read_machine()
    if args.installed:
        layers, machine = installed_layers(Path(args.installed))
        problems = []
    else:
        layers, problems = kit_layers(KIT, read_lock())
    problems += prove(layers, machine, static=not args.installed)
    carried = sum(len(layer) for layer in layers.values())
    if problems:
        print("\n".join(f"  PROBLEM: {p}" for p in problems))
        fail(f"check failed: {len(problems)} problem(s) in {carried} carried packages")
    print(f"gpu_kit check: OK, {carried} carried packages, every requirement met")


def installed_layers(target: Path) -> tuple[dict, dict[str, str | None]]:
    """The installed kit (DIR/site, DIR/sat) as layers, and every other distribution on this
    interpreter's path as the machine, with the versions it really has."""
    import importlib.metadata as md

    layers: dict[str, dict[str, Dist]] = {}
    for section in SECTIONS:
        layer = layers.setdefault(section, {})
        for d in md.distributions(path=[str(target / section)]):
            layer[canonicalize_name(d.metadata["Name"])] = Dist(
                d.metadata["Name"], d.version, d.requires or [], source=f"{target / section}"
            )
    for key in layers["sat"]:
        layers["sat"][key].flags = read_lock()["sat"].get(key, Dist("", "")).flags
    machine: dict[str, str | None] = {"python": ".".join(map(str, sys.version_info[:3]))}
    for d in md.distributions():
        machine.setdefault(canonicalize_name(d.metadata["Name"]), d.version)
    for layer in layers.values():  # what the kit installed is not the machine's
        for key in layer:
            if machine.get(key) == layer[key].version:
                machine.pop(key)
    return layers, machine


# --- prepare ------------------------------------------------------------------------------------


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
    )


def fetch(entry: Dist, folder: Path) -> str:
    """Download the cp312 manylinux wheel of entry, or build one from its sdist here."""
    spec = f"{entry.name}=={entry.version}"
    plats = [a for p in PLATFORMS for a in ("--platform", p)]
    # a `nodeps` entry (stable-audio-tools says Python < 3.11) installs whatever it declares
    plats += ["--ignore-requires-python"] if "nodeps" in entry.flags else []
    got = pip("download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
              "--implementation", "cp", "--abi", "cp312", "--abi", "abi3", "--abi", "none",
              *plats, "-d", str(folder), spec)  # fmt: skip
    if got.returncode == 0:
        return "downloaded"
    built = pip("wheel", "--no-deps", "--no-binary", entry.name, "-w", str(folder), spec)
    if built.returncode:
        fail(f"{spec}: neither a wheel nor an sdist that builds:\n{got.stderr[-600:]}\n"
             f"{built.stderr[-600:]}")  # fmt: skip
    return "built from its sdist"


def prepare_wheels(lock: dict[str, dict[str, Dist]]) -> None:
    for section, folder_name in SECTIONS.items():
        folder = KIT / folder_name
        folder.mkdir(parents=True, exist_ok=True)
        have = {}
        for path in folder.glob("*.whl"):
            name, version, *_ = parse_wheel_filename(path.name)
            entry = lock.get(section, {}).get(canonicalize_name(name))
            if entry and Version(entry.version) == version:
                have[canonicalize_name(name)] = path
            else:
                path.unlink()  # no longer in the lock
                print(f"  removed {folder_name}/{path.name}")
        for key, entry in lock.get(section, {}).items():
            if key not in have:
                how = fetch(entry, folder)
                print(f"  {folder_name}/: {entry.name}=={entry.version} {how}")


def size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def repo_size() -> int:
    """Tracked and untracked-not-ignored files: what travels beside the carried kit."""
    out = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return sum(size(ROOT / p) for p in out.split("\0") if p and (ROOT / p).is_file())


def prepare(args) -> None:
    lock = read_lock()
    prepare_wheels(lock)
    from gpu_kit_data import trim  # bench/, beside this script

    trim(REAL, KIT / "data", args.train_seconds, args.test_seconds, args.train_files)
    sizes = {f: size(KIT / f) for f in [*SECTIONS.values(), "data"]}
    kit, repo = sum(sizes.values()), repo_size()
    mib = lambda b: f"{b / 2**20:.1f} MiB"  # noqa: E731
    print("  " + ", ".join(f"{f}/ {mib(b)}" for f, b in sizes.items()))
    print(
        f"gpu_kit prepare: kit {mib(kit)} + repository {mib(repo)} = {mib(kit + repo)} "
        f"of the {mib(LIMIT)} a device call carries ({mib(LIMIT - kit - repo)} left)"
    )
    if kit + repo >= LIMIT:
        fail("the kit does not fit: trim the data (--train-seconds, --train-files)")
    check(argparse.Namespace(installed=None))


# --- install (on the GPU machine, and for the dry run) -----------------------------------------


def install(args) -> None:
    """pip install --no-index --no-deps --target DIR/site (and DIR/sat) the kit's wheels; then
    DIR/bin holds the audioae-* commands and sat-python, DIR/env.sh the paths. --this-python
    (the dry run): wheels this interpreter cannot install are skipped, and the package this
    interpreter already has is used instead (said, with both versions)."""
    target = Path(args.dir).resolve()
    shutil.rmtree(target, ignore_errors=True)
    here = set(sys_tags())
    import importlib.metadata as md

    for section, folder in SECTIONS.items():
        wheels, skipped = [], []
        for path in sorted((Path(args.kit) / folder).glob("*.whl")):
            fits = parse_wheel_filename(path.name)[3] & here
            (wheels if fits or not args.this_python else skipped).append(path)
        if not wheels and not skipped:
            fail(f"no wheels in {Path(args.kit) / folder} (bench/gpu_kit.py prepare)")
        for path in skipped:
            name = parse_wheel_filename(path.name)[0]
            try:
                instead = f"this Python's {name} {md.version(name)}"
            except md.PackageNotFoundError:
                instead = "nothing: absent here" + (
                    f" (SAT side: {args.sat_fallback})" if section == "sat" else ""
                )
            print(f"  {folder}/{path.name}: not for this Python; using {instead}")
        extra = ["--ignore-requires-python"] if section == "sat" else []  # SAT says <3.11
        done = pip("install", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir", "-q",
                   *extra, "--target", str(target / section), *map(str, wheels))  # fmt: skip
        if done.returncode:
            fail(f"pip install into {target / section} failed:\n{done.stderr[-2000:]}")
        print(f"  {section}: {len(wheels)} wheels installed into {target / section}")
    write_commands(target, args.sat_fallback)


def write_commands(target: Path, sat_fallback: str | None) -> None:
    """DIR/bin/audioae-* (pyproject's console scripts, run from this checkout's src/), DIR/bin/
    sat-python (this interpreter with DIR/sat ahead of DIR/site) and DIR/env.sh."""
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    bin_dir = target / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = f"{target / 'site'}:{ROOT / 'src'}"
    for name, spec in scripts.items():
        module, func = spec.split(":")
        (bin_dir / name).write_text(
            f"#!{sys.executable}\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n"
        )
        (bin_dir / name).chmod(0o755)
    sat_path = f"{target / 'sat'}:{path}" + (f":{sat_fallback}" if sat_fallback else "")
    sat = bin_dir / "sat-python"
    sat.write_text(f'#!/bin/sh\nPYTHONPATH="{sat_path}" exec {sys.executable} "$@"\n')
    sat.chmod(0o755)
    (target / "env.sh").write_text(
        f'export PYTHONPATH="{path}${{PYTHONPATH:+:$PYTHONPATH}}"\nexport PATH="{bin_dir}:$PATH"\n'
        f'export SAT_PYTHON="{sat}"\n'
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("prepare", help="wheels and trimmed data into bench/cache/gpu_kit/")
    pre.add_argument("--train-seconds", type=float, default=6.0, help="excerpt of each train file")
    pre.add_argument("--train-files", type=int, default=0, help="per category (0: all)")
    pre.add_argument("--test-seconds", type=float, default=10.0, help="first s of each test file")
    chk = sub.add_parser("check", help="prove every requirement is met (statically)")
    chk.add_argument(
        "--installed", metavar="DIR", help="check what `install DIR` installed instead"
    )
    ins = sub.add_parser("install", help="install the kit's wheels into DIR/site and DIR/sat")
    ins.add_argument("dir")
    ins.add_argument("--kit", default=str(KIT))
    ins.add_argument(
        "--this-python",
        action="store_true",
        help="skip the wheels this interpreter cannot install (the dry run)",
    )
    ins.add_argument("--sat-fallback", help="a site-packages for what [sat] skipped (dry run)")
    args = p.parse_args(argv)
    {"prepare": prepare, "check": check, "install": install}[args.command](args)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
