"""Pre-encode a folder of audio into latents for a latent model (`audioae-pre-encode`).

The output is stable-audio-tools' pre-encoded layout (its pre_encode.py writes it and its
`pre_encoded` dataset type, PreEncodedDataset, reads it), so a SAT diffusion run trains on it:

    OUT/details.json        the whole set: model, settings, counts, failures
    OUT/stats.json          latent statistics (audioae/inference/latent_stats.py)
    OUT/<rank>/<id>.npy     latents (latent_dim, L) float32, or with --codes the codes (Q, L) int64
    OUT/<rank>/<id>.json    SAT's metadata keys (path, relpath, timestamps, seconds_start,
                            seconds_total, padding_mask at the latent rate, sample_rate) and ours
                            beside them (offset, length, crop, crops, downsampling_ratio,
                            latent_dim, frames, latents, seed, model, model_hash)

<rank> is the folder of the process that wrote the item (as in SAT); <id> is derived from the
file's path relative to DATA and the crop index, so it does not depend on the number of
processes. Each item is either a whole file (chunked, exactly as audioae-encode encodes it) or,
with `seconds`, one of the consecutive crops of that length covering the file, the last one
zero-padded (padding_mask 0 there; a frame counts as audio when its first sample does, SAT's
nearest-neighbour rule).

Files are split over processes by their place in the sorted list (file i goes to process
i mod world_size), so every file is encoded exactly once. A restart skips files whose items are
all complete (the .json is written after the .npy, both atomically, so a complete .json means a
complete item), and the statistics read those back; batches never span groups of batch_size
files, and only whole groups are skipped, so a resumed run writes what an uninterrupted one
writes, bit for bit. Unreadable files are warnings, listed in details.json, never fatal.

OUT is never the input folder nor a folder holding audio, and --force replaces only the files
named as written here (items, temporary files; details.json and stats.json when they are ours):
any other file in OUT stays.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from audioae.errors import AudioAEError
from audioae.files import InputWarning, atomic_write, check_writable, write_text
from audioae.inference.latent_stats import STATS, Moments

DETAILS = "details.json"
# the settings a restart must share with the run it continues (besides the model's hash)
SHARED = ("seconds", "sample", "seed", "codes", "chunk_size", "overlap", "ema")


@dataclass
class Options:
    """seconds: crop/pad length (None: whole files); batch_size: items per forward pass (equal
    lengths only); sample: VAE draws instead of the mean (SAT's pre_encode.py samples); codes:
    write a discrete bottleneck's codes; chunk_size/overlap: as audioae-encode (latent frames,
    None: its defaults, chunk_size 0: whole files at once); workers: reading processes."""

    seconds: float | None = None
    batch_size: int = 8
    sample: bool = False
    seed: int = 0
    codes: bool = False
    chunk_size: int | None = None
    overlap: int | None = None
    ema: bool = True
    device: str = "auto"
    workers: int = 0
    force: bool = False


def item_id(relpath: str, crop: int) -> str:
    """The file name (without extension) of crop `crop` of the file at `relpath`."""
    digest = hashlib.sha256(relpath.replace(os.sep, "/").encode("utf-8")).hexdigest()[:16]
    return f"{digest}_{crop:05d}"


def padding_mask(valid: int, frames: int, ratio: int) -> list[int]:
    """1 for the frames whose first sample is audio (frame j: sample j * ratio < valid)."""
    return [1 if j * ratio < valid else 0 for j in range(frames)]


# the names of the files written here: items (item_id) and atomic_write's temporary files
ITEM = re.compile(r"[0-9a-f]{16}_\d{5,}\.(npy|json)")
TEMPORARY = re.compile(r"\.tmp-\d+-")


def _json(path: Path) -> dict:
    """A JSON object file's contents, {} when it is not one."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _one(item):
    return item  # DataLoader's collate_fn for items already whole (picklable for workers)


class _Reader(torch.utils.data.Dataset):
    """(index, audio at the model's rate and channels or None, error, warnings) per file."""

    def __init__(self, files: list[tuple[int, str]], sample_rate: int, channels: int):
        self.files, self.sample_rate, self.channels = files, sample_rate, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from audioae.inference.audio import read_audio, to_model

        index, path = self.files[i]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InputWarning)
            try:
                audio, rate = read_audio(path)
                x = to_model(audio, rate, self.sample_rate, self.channels, path)
                return index, x, None, [str(w.message) for w in caught]
            except Exception as e:  # unreadable: listed and skipped, never fatal
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                reason = reason if reason.startswith(path) else f"{path}: {reason}"
                return index, None, reason, [str(w.message) for w in caught]


class _Run:
    """One process's share of a pre-encode: the model, the output folder and what was done."""

    def __init__(self, checkpoint: str, data: Path, out: Path, opt: Options, state):
        from audioae.data.audio_dir import find_audio
        from audioae.inference import chunking, load_model, optimize_for_inference, state_hash

        self.opt, self.out, self.data, self.state = opt, out, data, state
        if opt.batch_size < 1:
            raise AudioAEError(f"--batch-size {opt.batch_size}: must be >= 1")
        if opt.seconds is not None and opt.seconds <= 0:
            raise AudioAEError(f"--seconds {opt.seconds}: must be positive")
        if not data.is_dir():
            raise AudioAEError(f"{data}: not a folder of audio files")
        self.files = find_audio(str(data))
        if not self.files:
            raise AudioAEError(f"{data}: no audio files found")
        self.chunk, self.overlap = chunking(opt.chunk_size, opt.overlap)
        # "auto": each process's own device (cuda:LOCAL_RANK under accelerate launch, else CUDA
        # when there is one, else the CPU)
        device = state.device if opt.device == "auto" else torch.device(opt.device)
        self.model, cfg = load_model(checkpoint, ema=opt.ema)
        if opt.codes and not self.model.is_discrete:
            raise AudioAEError("--codes: the model's bottleneck is continuous; it has no codes")
        self.model_hash = state_hash(self.model.state_dict())
        optimize_for_inference(self.model)  # after hashing: it renames the weights
        self.model.to(device)
        m = self.model
        self.crop = None if opt.seconds is None else max(1, round(opt.seconds * m.sample_rate))
        self.settings = {
            "model": str(checkpoint),
            "model_hash": self.model_hash,
            **{k: v for k, v in asdict(self.opt).items() if k in SHARED},
        }
        self.model_config = OmegaConf.to_container(cfg, resolve=True)
        self.moments, self.group_moments, self.failures = Moments(), {}, []
        self.counts = {"files": 0, "items": 0, "written": 0, "skipped_files": 0, "failed": 0}
        self.audio_seconds = 0.0

    # --- the output folder ----------------------------------------------------------------------

    def check_out(self) -> None:
        """Refuse an OUT that is or holds the input folder, or holds audio, or whose details.json
        or stats.json audioae did not write; and to add to one written with another model or
        settings, unless --force."""
        from audioae.data.audio_dir import find_audio

        check_writable(self.out)
        out, data = self.out.resolve(), self.data.resolve()
        if out == data or out in data.parents:
            raise AudioAEError(
                f"--out {self.out}: it {'is' if out == data else 'holds'} the input folder "
                f"{self.data}; write the latents into a folder of their own"
            )
        if self.out.is_dir() and (audio := find_audio(str(self.out))):
            raise AudioAEError(
                f"--out {self.out}: it holds audio ({audio[0]}); write the latents into a "
                "folder of their own"
            )
        details = self.out / DETAILS
        for name, key, kind in ((DETAILS, "settings", dict), (STATS, "model_hash", str)):
            if (self.out / name).exists() and not isinstance(_json(self.out / name).get(key), kind):
                raise AudioAEError(
                    f"{self.out / name}: not written by audioae-pre-encode, so never replaced "
                    "(not even with --force); another --out"
                )
        if details.exists():
            old = _json(details)["settings"]
            differ = [k for k in self.settings if k != "model" and old.get(k) != self.settings[k]]
            if differ and not self.opt.force:
                k = differ[0]
                raise AudioAEError(
                    f"{self.out} holds latents made with {k}={old.get(k)!r}, not "
                    f"{self.settings[k]!r}; another --out, or --force to re-encode everything"
                )
        elif self.out.exists() and any(self.out.iterdir()) and not self.opt.force:
            raise AudioAEError(f"{self.out}: not empty and no {DETAILS}; --force writes into it")

    def prepare_out(self) -> None:
        """Main process: remove temporary files a killed run left, and with --force the items
        of an earlier run (only files named as this module names them: any other is kept);
        then record the run as started."""
        self.out.mkdir(parents=True, exist_ok=True)
        for folder in self._folders():
            for p in folder.iterdir():
                if TEMPORARY.match(p.name) or (self.opt.force and ITEM.fullmatch(p.name)):
                    p.unlink(missing_ok=True)
        write_text(self.out / DETAILS, json.dumps(self.details("running"), indent=2) + "\n")

    def _folders(self) -> list[Path]:
        return [p for p in self.out.iterdir() if p.is_dir() and p.name.isdigit()]

    def scan(self) -> None:
        """Every item file already in OUT: {name: [paths]} (any process's folder)."""
        self.existing: dict[str, list[Path]] = {}
        for folder in self._folders():
            for p in folder.iterdir():
                if p.suffix in (".npy", ".json") and not p.name.startswith("."):
                    self.existing.setdefault(p.name, []).append(p)

    def _done(self, relpath: str) -> list[tuple[Path, Path]] | None:
        """The (npy, json) of every item of a file when all are complete, else None."""
        first = item_id(relpath, 0)
        if first + ".json" not in self.existing:
            return None
        try:
            meta = json.loads(self.existing[first + ".json"][0].read_text())
        except (OSError, ValueError):
            return None  # not ours or damaged: encoded again
        items = []
        for crop in range(int(meta.get("crops", 1))):
            name = item_id(relpath, crop)
            npy, js = self.existing.get(name + ".npy"), self.existing.get(name + ".json")
            if not npy or not js:
                return None
            items.append((npy[0], js[0]))
        return items

    # --- encoding -------------------------------------------------------------------------------

    def mine(self) -> list[tuple[int, str]]:
        rank, world = self.state.process_index, self.state.num_processes
        return [(i, f) for i, f in enumerate(self.files) if i % world == rank]

    def run(self) -> None:
        """Encode this process's files in groups of batch_size files: batches never span two
        groups, and a restart skips only whole groups whose items are all complete (re-encoding
        the rest), so every forward pass holds the same items as in an uninterrupted run and a
        resumed run writes the same bits. (A group with an unreadable file is tried again.)"""
        m, mine = self.model, self.mine()
        todo, self.group_ends, self.group_of = [], set(), {}
        for g in range(0, len(mine), self.opt.batch_size):
            group = mine[g : g + self.opt.batch_size]
            done = [self._done(os.path.relpath(path, self.data)) for _, path in group]
            if any(d is None for d in done):
                todo += group
                self.group_ends.add(group[-1][0])
                self.group_of.update((index, g) for index, _ in group)
                continue
            self.counts["files"] += len(group)
            self.counts["skipped_files"] += len(group)
            for npy, js in (item for d in done for item in d):
                meta = json.loads(js.read_text())
                self.counts["items"] += 1
                self.audio_seconds += meta["length"] / m.sample_rate
                if not self.opt.codes:
                    self._moments(g).add(np.load(npy), meta["padding_mask"])
        reader = _Reader(todo, m.sample_rate, m.data_channels)
        loader = torch.utils.data.DataLoader(
            reader, batch_size=None, num_workers=self.opt.workers, collate_fn=_one
        )
        self.pending: list[tuple[dict, torch.Tensor, int]] = []
        (self.out / str(self.state.process_index)).mkdir(parents=True, exist_ok=True)
        bar = tqdm(
            total=len(mine), initial=len(mine) - len(todo), unit="file", file=sys.stderr,
            desc=f"audioae-pre-encode [{self.state.num_processes} process(es)]",
            disable=None if self.state.is_main_process else True,
        )  # fmt: skip
        start = time.perf_counter()
        fresh = 0.0
        for index, x, error, said in loader:
            path = self.files[index]
            for message in said:
                warnings.warn(message, InputWarning, stacklevel=1)
            self.counts["files"] += 1
            if error is not None:
                self.counts["failed"] += 1
                self.failures.append({"path": path, "reason": error})
                warnings.warn(f"{error}; skipped", InputWarning, stacklevel=1)
            else:
                x = m.inputs_and_targets(x[None])[0][0]  # the encoder's input, as training
                fresh += x.shape[-1] / m.sample_rate
                self._add_file(index, path, x)
            if index in self.group_ends:
                self._flush()
            bar.update(1)
            bar.set_postfix_str(f"{fresh / max(time.perf_counter() - start, 1e-9):.1f} audio s/s")
        self._flush()
        bar.close()
        for g in sorted(self.group_moments):  # in file order, whatever was skipped
            self.moments.merge(self.group_moments[g])

    def _moments(self, group: int) -> Moments:
        return self.group_moments.setdefault(group, Moments())

    def _add_file(self, index: int, path: str, x: torch.Tensor) -> None:
        """Queue the items of one file (C, T); batches go through the model when full."""
        m, rel, total = self.model, os.path.relpath(path, self.data), x.shape[-1]
        size = total if self.crop is None else self.crop
        crops = 1 if self.crop is None else math.ceil(total / self.crop)
        for crop in range(crops):
            offset = crop * size
            piece = x[:, offset : offset + size]
            valid = piece.shape[-1]
            if valid < size:
                piece = torch.nn.functional.pad(piece, (0, size - valid))
            upper = max(0, total - size)  # SAT's PadCrop_Normalized_T
            meta = {
                "path": os.path.abspath(path),
                "relpath": rel,
                "timestamps": [offset / (upper + size), (offset + size) / (upper + size)],
                "seconds_start": math.floor(offset / m.sample_rate),
                "seconds_total": math.ceil(total / m.sample_rate),
                "padding_mask": None,  # at the latent rate, once encoded
                "sample_rate": m.sample_rate,
                "offset": offset,
                "length": valid,
                "crop": crop,
                "crops": crops,
            }
            if self.pending and self.pending[0][1].shape[-1] != size:
                self._flush()  # only equal lengths batch
            self.pending.append((meta, piece, self.group_of[index]))
            if len(self.pending) >= self.opt.batch_size:
                self._flush()

    def _flush(self) -> None:
        from audioae.inference import encode_long

        if not self.pending:
            return
        m, pending, self.pending = self.model, self.pending, []
        if self.opt.sample:  # reproducible draws, different in every forward pass
            first = item_id(pending[0][0]["relpath"], pending[0][0]["crop"])
            digest = hashlib.sha256(f"{self.opt.seed}:{first}".encode()).hexdigest()
            torch.manual_seed(int(digest[:15], 16))
        enc = encode_long(
            m, torch.stack([p for _, p, _ in pending]), self.chunk, self.overlap, self.opt.sample
        )
        for i, (meta, _, group) in enumerate(pending):
            latents = enc.latents[i].contiguous()
            mask = padding_mask(meta["length"], latents.shape[-1], m.downsampling_ratio)
            meta["padding_mask"] = mask
            meta.update(
                downsampling_ratio=m.downsampling_ratio,
                latent_dim=m.latent_dim,
                frames=latents.shape[-1],
                latents="codes" if self.opt.codes else "sample" if self.opt.sample else "mean",
                seed=self.opt.seed,
                model=self.settings["model"],
                model_hash=self.model_hash,
                audioae_version=version("audioae"),
            )
            array = enc.codes[i].numpy() if self.opt.codes else latents.numpy()
            write_item(self.out / str(self.state.process_index), meta, array, self.existing)
            self.counts["items"] += 1
            self.counts["written"] += 1
            self.audio_seconds += meta["length"] / m.sample_rate
            if not self.opt.codes:
                self._moments(group).add(array, mask)

    def details(self, status: str, counts=None, failures=None, seconds=None, audio=None):
        return {
            "status": status,
            "audioae_version": version("audioae"),
            "settings": self.settings,
            "data": str(self.data),
            "sample_size": self.crop,
            "processes": self.state.num_processes,
            "counts": counts,
            "failures": failures,
            "seconds": seconds,
            "audio_seconds": audio,
            "model_config": self.model_config,
        }


def write_item(folder: Path, meta: dict, array: np.ndarray, existing: dict) -> None:
    """Write <id>.npy, then <id>.json (each atomically; a complete .json means a complete item),
    removing copies of the item that a run with other processes left in other folders."""
    name = item_id(meta["relpath"], meta["crop"])
    for ending in (".json", ".npy"):  # the .json first: never a complete-looking stale item
        for old in existing.get(name + ending, []):
            if old.parent != folder:
                old.unlink(missing_ok=True)
    with atomic_write(folder / f"{name}.npy") as tmp:
        np.save(tmp, array)
    with atomic_write(folder / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(meta))


def _process_state(device: str):
    """Accelerate's view of the processes (one, or those `accelerate launch` started)."""
    from accelerate import PartialState

    return PartialState(cpu=device == "cpu")


def pre_encode(checkpoint: str, data: Path, out: Path, opt: Options | None = None) -> dict:
    """Encode every audio file under `data` into `out` (see the module docstring); returns the
    details.json it wrote (on every process)."""
    from accelerate.utils import gather_object

    opt = opt or Options()
    state = _process_state(opt.device)
    start = time.perf_counter()
    run = _Run(checkpoint, Path(data), Path(out), opt, state)
    run.check_out()  # on every process, so that all fail alike before any waits
    if state.is_main_process:
        run.prepare_out()
    state.wait_for_everyone()
    run.scan()
    run.run()
    shares = [
        {"moments": run.moments.to_state(), "counts": run.counts, "failures": run.failures,
         "audio": run.audio_seconds}
    ]  # fmt: skip
    if state.num_processes > 1:
        shares = gather_object(shares)
    moments, counts, failures = Moments(), dict.fromkeys(run.counts, 0), []
    for share in shares:  # in process order: the same result on every process
        moments.merge(Moments.from_state(share["moments"]))
        counts = {k: counts[k] + share["counts"][k] for k in counts}
        failures += share["failures"]
    failures.sort(key=lambda f: f["path"])
    audio = sum(s["audio"] for s in shares)
    seconds = time.perf_counter() - start
    details = run.details("complete", counts, failures, seconds, audio)
    if state.is_main_process:
        if not opt.codes:
            stats = {**moments.summary(), "model_hash": run.model_hash}
            write_text(Path(out) / STATS, json.dumps(stats, indent=2) + "\n")
        write_text(Path(out) / DETAILS, json.dumps(details, indent=2) + "\n")
        print(
            f"audioae-pre-encode: {counts['items']} items from {counts['files']} files "
            f"({counts['skipped_files']} already done, {counts['failed']} unreadable) "
            f"in {seconds:.1f} s, {audio:.1f} s of audio, to {out}",
            file=sys.stderr,
        )
    state.wait_for_everyone()
    return details
