"""Build the real-audio benchmark set from Debian packages into a cache folder (never committed).

    python bench/real_audio.py                    # -> bench/cache/real_audio (git-ignored)
    python bench/real_audio.py --cache DIR --force

Installs what it needs with apt-get (as root; `--no-install` to only check), then builds

    train/music/*.flac, test/music/*.flac   OpenMSX MIDI files (openttd-openmsx) rendered by
                                            fluidsynth with the TimGM6mb soundfont: 44.1 kHz
                                            true stereo, a 30 s excerpt from 20 s, peak -1 dBFS,
                                            24-bit FLAC; 5 pieces held out for testing
    train/speech/*.flac, test/speech/*.flac recorded Dutch voice acting (fillets-ng-data-nl):
                                            the lines of one game level joined (0.3 s apart)
                                            up to 30 s, mixed to mono, 22.05 -> 44.1 kHz, stored
                                            as two EQUAL channels (dual mono, as most speech
                                            is); peak -1 dBFS; 5 levels held out for testing
    train/quiet/*.flac, test/quiet/*.flac   quiet passages: music and speech files of the same
                                            split at peak -30 dBFS
    instruments/*                           instrument samples shipped by LMMS (lmms-common)
    drums/*                                 the GMRockKit drum kit of Hydrogen (hydrogen-data),
                                            medium-velocity layer
    manifest.json                           every file: source, package version, hashes
    LICENSES.txt                            the packages' licences and copyright files

The file list with sha256 hashes is bench/real_audio_files.json; every source file is checked
against it and a mismatch stops the build. Recorded samples are copied byte for byte, so their
hash is the source's. Rendered music is hashed as decoded 24-bit samples: a fluidsynth or
soundfont version other than the recorded one may render differently, which is reported but
allowed (the MIDI itself is checked). `--update-list` rewrites the list's hashes from the
installed packages (after a deliberate package upgrade).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

HERE = Path(__file__).resolve().parent
LIST = HERE / "real_audio_files.json"
DEFAULT_CACHE = HERE / "cache" / "real_audio"
SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
PACKAGES = [
    "openttd-openmsx",
    "timgm6mb-soundfont",
    "fluidsynth",
    "lmms-common",
    "hydrogen-data",
    "fillets-ng-data-nl",
]


def fail(message: str) -> None:
    sys.exit(f"real_audio: {message}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    return sha256(path.read_bytes())


def installed_versions(packages: list[str]) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for pkg in packages:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}\t${Version}", pkg], capture_output=True, text=True
        )
        status, _, version = proc.stdout.partition("\t")
        versions[pkg] = version if proc.returncode == 0 and status.endswith(" installed") else None
    return versions


def ensure_packages(install: bool) -> dict[str, str]:
    """The packages' versions, installing missing ones with apt-get first."""
    missing = [p for p, v in installed_versions(PACKAGES).items() if v is None]
    if missing:
        command = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
        if not install or os.geteuid() != 0:
            fail(
                f"missing packages {' '.join(missing)}; as root: apt-get update && "
                f"{' '.join(command)}"
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        print(f"installing {' '.join(missing)} (apt-get)", flush=True)
        for cmd in (["apt-get", "update", "-q"], command):
            if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode:
                fail(f"{' '.join(cmd)} failed")
    versions = installed_versions(PACKAGES)
    if None in versions.values():
        fail(f"packages still missing after apt-get: {versions}")
    return versions  # type: ignore[return-value]


def render(midi: Path, excerpt: dict, out: Path) -> str:
    """Render `midi` with fluidsynth, cut the excerpt, normalise, write FLAC; returns the sha256
    of the decoded 24-bit samples."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "render.wav"
        # -ni: no shell, no MIDI input; -F: render to a file as fast as possible; float
        # samples (no dither noise, so a render is repeatable); reverb and chorus at defaults
        cmd = ["fluidsynth", "-ni", "-q", "-T", "wav", "-O", "float"]
        cmd += ["-r", str(excerpt["sample_rate"]), "-F", str(wav), SOUNDFONT, str(midi)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode or not wav.exists():
            fail(f"fluidsynth failed on {midi}: {proc.stderr.strip()[-300:]}")
        audio, rate = sf.read(wav, dtype="float64", always_2d=True)
    start = round(excerpt["start_seconds"] * rate)
    audio = audio[start : start + round(excerpt["seconds"] * rate)]
    if audio.shape[0] < round(excerpt["seconds"] * rate) or not np.abs(audio).max() > 0:
        fail(f"{midi}: rendering is shorter than the excerpt or silent")
    return write_24bit(audio, rate, excerpt["peak_dbfs"], out)


def write_24bit(audio: np.ndarray, rate: int, peak_dbfs: float, out: Path) -> str:
    """Normalise `audio` (frames, channels) to `peak_dbfs`, write 24-bit FLAC; returns the sha256
    of the decoded samples."""
    audio = audio * (10 ** (peak_dbfs / 20) / np.abs(audio).max())
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out, audio, rate, subtype="PCM_24")
    return sha256(sf.read(out, dtype="int32")[0].tobytes())


def join_speech(entry: dict, excerpt: dict, out: Path) -> str:
    """The recorded lines of `entry["sources"]`, each mixed to mono and resampled, joined with
    `gap_seconds` of silence, cut to the excerpt length, written as two equal channels."""
    rate, gap = (
        excerpt["sample_rate"],
        np.zeros(round(entry["gap_seconds"] * excerpt["sample_rate"])),
    )
    parts = []
    for item in entry["sources"]:
        audio, source_rate = sf.read(item["source"], dtype="float64", always_2d=True)
        mono = audio.mean(axis=1)
        g = math.gcd(rate, source_rate)
        parts += [resample_poly(mono, rate // g, source_rate // g), gap]
    mono = np.concatenate(parts)[: round(excerpt["seconds"] * rate)]
    return write_24bit(np.stack([mono, mono], axis=1), rate, excerpt["peak_dbfs"], out)


def build(spec: dict, cache: Path, versions: dict[str, str]) -> dict:
    """Build the set into `cache` (an empty folder); returns the manifest."""
    excerpt = spec["excerpt"]
    problems = []
    for entry in sources(spec):
        source = Path(entry["source"])
        if not source.is_file():
            problems.append(f"{source}: missing")
        elif (digest := file_sha256(source)) != entry["sha256"]:
            problems.append(f"{source}: sha256 {digest[:12]}..., list {entry['sha256'][:12]}...")
    if problems:
        fail(
            f"{len(problems)} source file(s) missing or changed against {LIST.name} (package "
            f"versions here: {versions}): {'; '.join(problems[:5])}. If the packages were "
            "upgraded on purpose, run with --update-list and commit the list."
        )

    def one(entry: dict) -> dict:
        out = cache / entry["output"]
        record = {**entry, "package_version": versions[entry["package"]]}
        if "derived_from" in entry:  # a quiet copy of another file of the set
            audio, rate = sf.read(cache / entry["derived_from"], dtype="float64", always_2d=True)
            record["audio_sha256"] = write_24bit(audio, rate, entry["peak_dbfs"], out)
            record["rendered_identically"] = record["audio_sha256"] == entry.get("audio_sha256")
        elif "sources" in entry:
            record["audio_sha256"] = join_speech(entry, excerpt, out)
            record["rendered_identically"] = record["audio_sha256"] == entry.get("audio_sha256")
        elif (source := Path(entry["source"])).suffix == ".mid":
            record["audio_sha256"] = render(source, excerpt, out)
            record["rendered_identically"] = record["audio_sha256"] == entry.get("audio_sha256")
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, out)
        info = sf.info(out)
        record.update(
            seconds=round(info.duration, 3),
            sample_rate=info.samplerate,
            channels=info.channels,
            bytes=out.stat().st_size,
        )
        return record

    # quiet copies are made from files of the first pass
    first = [e for e in spec["files"] if "derived_from" not in e]
    derived = [e for e in spec["files"] if "derived_from" in e]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        records = list(pool.map(one, first)) + list(pool.map(one, derived))
    write_licences(cache / "LICENSES.txt", spec, versions)
    manifest = {
        "list": LIST.name,
        "packages": versions,
        "fluidsynth": fluidsynth_version(),
        "recorded_with": spec.get("recorded_with"),
        "excerpt": excerpt,
        "files": records,
    }
    (cache / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def sources(spec: dict) -> list[dict]:
    """Every Debian-shipped source file of the list ({"source", "sha256"})."""
    out = []
    for entry in spec["files"]:
        if "source" in entry:
            out.append(entry)
        out += entry.get("sources", [])
    return out


def write_licences(path: Path, spec: dict, versions: dict[str, str]) -> None:
    lines = [
        "Licences of the audioae real-audio benchmark set (built by bench/real_audio.py).",
        "Kept out of audioae's repository; each file keeps the licence of its Debian package.",
        "",
    ]
    for pkg, note in spec["licences"].items():
        used = sum(e["package"] == pkg for e in spec["files"])
        lines += [f"{pkg} {versions[pkg]}: {note}"]
        lines += [f"  source of {used} file(s)"] if used else []
        lines += [""]
    for pkg in spec["licences"]:
        lines += ["=" * 78, f"/usr/share/doc/{pkg}/copyright", "=" * 78]
        lines += [Path(f"/usr/share/doc/{pkg}/copyright").read_text(errors="replace"), ""]
    path.write_text("\n".join(lines))


def up_to_date(cache: Path, spec: dict) -> bool:
    """Whether `cache` holds this list's files with the hashes its manifest recorded."""
    try:
        manifest = json.loads((cache / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    records = {r["output"]: r for r in manifest.get("files", [])}
    for entry in spec["files"]:
        record, out = records.get(entry["output"]), cache / entry["output"]
        if record is None or record.get("sha256") != entry.get("sha256") or not out.is_file():
            return False
        if record.get("sources", []) != entry.get("sources", []):
            return False
        if "audio_sha256" in record:
            if sha256(sf.read(out, dtype="int32")[0].tobytes()) != record["audio_sha256"]:
                return False
        elif file_sha256(out) != entry["sha256"]:
            return False
    return True


def update_list(spec: dict, versions: dict[str, str]) -> None:
    """Record the installed sources' hashes (and this machine's renders) in the list."""
    with tempfile.TemporaryDirectory() as tmp:
        for entry in sources(spec):
            source = Path(entry["source"])
            if not source.is_file():
                fail(f"{source}: not installed; edit {LIST.name} by hand")
            entry["sha256"] = file_sha256(source)
        outputs = {}
        for entry in spec["files"]:
            out = Path(tmp) / entry["output"]
            if "derived_from" in entry:
                audio, rate = sf.read(outputs[entry["derived_from"]], always_2d=True)
                entry["audio_sha256"] = write_24bit(audio, rate, entry["peak_dbfs"], out)
            elif "sources" in entry:
                entry["audio_sha256"] = join_speech(entry, spec["excerpt"], out)
            elif entry["source"].endswith(".mid"):
                entry["audio_sha256"] = render(Path(entry["source"]), spec["excerpt"], out)
            outputs[entry["output"]] = out
    spec["recorded_with"] = {**versions, "fluidsynth": fluidsynth_version()}
    LIST.write_text(json.dumps(spec, indent=2) + "\n")
    print(f"updated {LIST}")


def fluidsynth_version() -> str:
    proc = subprocess.run(["fluidsynth", "--version"], capture_output=True, text=True)
    return proc.stdout.splitlines()[0] if proc.stdout else "unknown"


def summary(manifest: dict, cache: Path) -> None:
    by: dict[str, list[dict]] = {}
    for r in manifest["files"]:
        by.setdefault(str(Path(r["output"]).parent), []).append(r)
    print(f"{'folder':<14} {'files':>5} {'minutes':>8} {'MB':>7}")
    for folder, rs in sorted(by.items()):
        minutes, mb = sum(r["seconds"] for r in rs) / 60, sum(r["bytes"] for r in rs) / 1e6
        print(f"{folder:<14} {len(rs):>5} {minutes:>8.2f} {mb:>7.1f}")
    total = sum(r["bytes"] for r in manifest["files"]) / 1e6
    print(
        f"{'total':<14} {len(manifest['files']):>5} "
        f"{sum(r['seconds'] for r in manifest['files']) / 60:>8.2f} {total:>7.1f}"
    )
    changed = [r["output"] for r in manifest["files"] if r.get("rendered_identically") is False]
    if changed:
        print(
            f"note: {len(changed)} rendering(s) differ from the recorded ones "
            f"({manifest['fluidsynth']} here; recorded with {manifest['recorded_with']}); "
            "the MIDI sources are identical, numbers are comparable only approximately"
        )
    print(f"built: {cache}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="default: %(default)s")
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p.add_argument("--no-install", action="store_true", help="never run apt-get")
    p.add_argument("--update-list", action="store_true", help=f"rewrite {LIST.name}'s hashes")
    args = p.parse_args()
    spec = json.loads(LIST.read_text())
    versions = ensure_packages(install=not args.no_install)
    if args.update_list:
        update_list(spec, versions)
        return
    cache = args.cache.resolve()
    if not args.force and up_to_date(cache, spec):
        summary(json.loads((cache / "manifest.json").read_text()), cache)
        print("(up to date; --force rebuilds)")
        return
    partial = cache.with_name(cache.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    manifest = build(spec, partial, versions)
    shutil.rmtree(cache, ignore_errors=True)
    partial.rename(cache)
    summary(manifest, cache)


if __name__ == "__main__":
    main()
