"""The latents file format of `audioae-encode` (read back by `audioae-decode`).

NAME.safetensors   tensors `latents` (D, L) float and, for discrete models, `codes` (Q, L)
                   int64; the metadata as JSON under the header key "audioae"
NAME.npy           (--format npy) the latents; NAME.codes.npy the codes
NAME.json          the metadata (`metadata`), beside either
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from audioae.autoencoder import AudioAutoencoder
from audioae.errors import AudioAEError
from audioae.files import atomic_write

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
    each atomically."""
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
    with atomic_write(_sibling(out, ".json")) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")


def load_latents(path: Path) -> tuple[Tensor | None, Tensor | None, dict]:
    """(latents (D, L) or None, codes (Q, L) or None, metadata) of an encoded file."""
    sidecar = _sibling(path, ".json")
    meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
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
    return latents, codes, meta


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
