"""The latents file format of `audioae-encode` (read back by `audioae-decode`).

NAME.safetensors   tensors `latents` (D, L) float and, for discrete models, `codes` (Q, L)
                   int64; the metadata as JSON under the header key "audioae"
NAME.npy           (--format npy) the latents; NAME.codes.npy the codes
NAME.json          the metadata (`metadata`), beside either
"""

from __future__ import annotations

import json
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from audioae.autoencoder import AudioAutoencoder
from audioae.errors import AudioAEError
from audioae.files import InputWarning, atomic_write

FORMATS = ("safetensors", "npy")
_ENDINGS = (".codes.npy", ".safetensors", ".npy", ".json")


def stem(path: Path) -> str:
    """NAME of NAME.safetensors, NAME.npy, NAME.codes.npy, NAME.json or any other file."""
    name = path.name
    for ending in _ENDINGS:
        if name.endswith(ending):
            return name[: -len(ending)]
    return path.stem


def _sibling(path: Path, ending: str) -> Path:
    return path.with_name(stem(path) + ending)


def metadata(
    model: AudioAutoencoder,
    checkpoint: str,
    model_hash: str,
    source: dict,
    length: int,
    latents: Tensor,
    codes: Tensor | None,
    sample: bool,
    seed: int,
    chunk_size: int,
    overlap: int,
) -> dict:
    """What NAME.json records: the model, how the latents were made, and the source file."""
    return {
        "audioae_version": version("audioae"),
        "model": checkpoint,
        "model_hash": model_hash,
        "sample_rate": model.sample_rate,
        "channels": model.in_channels,
        "length": length,
        "downsampling_ratio": model.downsampling_ratio,
        "latent_dim": model.latent_dim,
        "frames": latents.shape[-1],
        "latents": "sample" if sample else "mean",
        "seed": seed if sample else None,
        "discrete": model.is_discrete,
        "codebooks": codes.shape[0] if codes is not None else None,
        "chunk_size": chunk_size,
        "overlap": overlap,
        "source": source,
    }


def outputs(out: Path) -> list[Path]:
    """Every file `save_latents(out, ...)` may write (for the overwrite check; with .npy a
    stale NAME.codes.npy would be read back with the new latents, so it counts too)."""
    paths = [out, _sibling(out, ".json")]
    if out.suffix == ".npy":
        paths.append(_sibling(out, ".codes.npy"))
    return paths


def save_latents(out: Path, latents: Tensor, codes: Tensor | None, meta: dict) -> None:
    """Write latents (D, L) and codes (Q, L) to `out` (.safetensors or .npy) and NAME.json,
    each atomically; a NAME.codes.npy of an earlier encode is removed when there are no codes
    now (it counts as an output: `outputs`)."""
    from safetensors.torch import save_file

    if out.suffix == ".safetensors":
        tensors = {"latents": latents.cpu()}
        if codes is not None:
            tensors["codes"] = codes.cpu()
        with atomic_write(out) as tmp:
            save_file(tensors, tmp, metadata={"audioae": json.dumps(meta)})
    else:
        with atomic_write(out) as tmp:
            np.save(tmp, latents.cpu().numpy())
        if codes is not None:
            with atomic_write(_sibling(out, ".codes.npy")) as tmp:
                np.save(tmp, codes.cpu().numpy())
        else:  # decode --from-codes would read it with these latents
            _sibling(out, ".codes.npy").unlink(missing_ok=True)
    with atomic_write(_sibling(out, ".json")) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")


def load_latents(path: Path) -> tuple[Tensor | None, Tensor | None, dict]:
    """(latents (D, L) or None, codes (Q, L) or None, metadata) of an encoded file."""
    sidecar = _sibling(path, ".json")
    meta = _read_sidecar(sidecar) if sidecar.exists() else {}
    latents = codes = None
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = meta or json.loads((f.metadata() or {}).get("audioae", "{}"))
                names = set(f.keys())
                latents = f.get_tensor("latents") if "latents" in names else None
                codes = f.get_tensor("codes") if "codes" in names else None
        elif path.name.endswith(".codes.npy"):
            codes = torch.from_numpy(np.load(path, allow_pickle=False))
        elif path.suffix == ".npy":
            latents = torch.from_numpy(np.load(path, allow_pickle=False))
            coded = _sibling(path, ".codes.npy")
            codes = torch.from_numpy(np.load(coded, allow_pickle=False)) if coded.exists() else None
            if codes is not None and meta.get("discrete") is False:
                warnings.warn(
                    f"{coded}: ignored: {sidecar} records latents of a continuous model, "
                    "without codes (left from an earlier encode?)",
                    InputWarning,
                    stacklevel=2,
                )
                codes = None
        else:
            raise AudioAEError(f"{path}: expected .safetensors or .npy latents")
    except AudioAEError:
        raise
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AudioAEError(f"{path}: cannot read latents ({reason})") from None
    latents, codes = _matrix(path, "latents", latents), _matrix(path, "codes", codes)
    if latents is None and codes is None:
        raise AudioAEError(f"{path}: holds neither latents nor codes")
    for name, t in (("latents", latents), ("codes", codes)):
        if t is not None and t.shape[-1] == 0:
            raise AudioAEError(f"{path}: {name} of shape {tuple(t.shape)}: 0 frames")
    if latents is not None and latents.is_floating_point() and not latents.isfinite().all():
        bad = ~latents.isfinite()
        c, t = bad.nonzero()[0].tolist()
        raise AudioAEError(
            f"{path}: latents hold {int(bad.sum())} NaN or infinite value(s) (the first at "
            f"channel {c}, frame {t}); they would decode to NaN audio"
        )
    return latents, codes, meta


def _read_sidecar(sidecar: Path) -> dict:
    try:
        meta = json.loads(sidecar.read_text())
    except json.JSONDecodeError as e:
        raise AudioAEError(
            f"{sidecar}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); it should "
            "be the metadata audioae-encode wrote"
        ) from None
    if not isinstance(meta, dict):
        raise AudioAEError(f"{sidecar}: expected a JSON object (audioae-encode's metadata)")
    return meta


def decode_length(path: Path, meta: dict, frames: int, sample_rate: int, ratio: int) -> int | None:
    """The number of samples to keep when latents of `frames` frames from `path` are decoded
    by a model of `sample_rate` and downsampling `ratio` (None: all of them), after checking
    that its metadata (`load_latents`) fits that model: the same rate and ratio, and a length
    that is a whole number of samples in 1..frames * ratio."""
    sidecar = _sibling(path, ".json")
    where = sidecar if sidecar.exists() else f"{path} (its metadata)"
    rate = meta.get("sample_rate")
    if rate is not None and rate != sample_rate:
        raise AudioAEError(f"{path}: encoded at {rate} Hz, the model runs at {sample_rate} Hz")
    made = meta.get("downsampling_ratio")
    if made is not None and (isinstance(made, bool) or not isinstance(made, int) or made < 1):
        raise AudioAEError(
            f'{where}: "downsampling_ratio" is {json.dumps(made)}; expected a whole number above 0'
        )
    if made is not None and made != ratio:
        raise AudioAEError(
            f"{path}: encoded by a model of downsampling ratio {made} ({where}), the decoding "
            f"model's is {ratio}: the audio would be {ratio / made:g} times as long as the "
            "source; decode with the model that encoded it"
        )
    length = meta.get("length")
    most = frames * ratio
    if length is None:
        return None
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= most:
        raise AudioAEError(
            f'{where}: "length" is {json.dumps(length)}; expected a whole number of samples '
            f'from 1 to {most} ({frames} frames of {ratio}), or no "length" to keep them all'
        )
    return length


def check_codes(path: Path, codes: Tensor, codebooks: int | None, size: int | None) -> None:
    """Codes (Q, L) a bottleneck of `codebooks` codebooks of `size` entries can decode:
    integers, Q == codebooks, each in [0, size); None skips that check."""
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise AudioAEError(f"{path}: codes of type {codes.dtype}, expected integers")
    if codebooks is not None and codes.shape[0] != codebooks:
        raise AudioAEError(
            f"{path}: codes for {codes.shape[0]} codebook(s), the model has {codebooks}"
        )
    if size is not None:
        outside = ((codes < 0) | (codes >= size)).nonzero()
        if len(outside):
            q, t = outside[0].tolist()
            raise AudioAEError(
                f"{path}: code {codes[q, t].item()} (codebook {q}, frame {t}) is outside the "
                f"model's range 0..{size - 1}"
            )


def _matrix(path: Path, name: str, t: Tensor | None) -> Tensor | None:
    if t is not None and t.dim() == 3 and t.shape[0] == 1:
        t = t[0]
    if t is not None and t.dim() != 2:
        raise AudioAEError(f"{path}: {name} of shape {tuple(t.shape)}, expected (dim, frames)")
    return t
