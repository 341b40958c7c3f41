"""Reading weights without running code, strict loading with a readable report, fingerprints and
weight-norm folding.

Nothing here unpickles arbitrary objects: `.safetensors` files hold only tensors, and anything
else goes through `torch.load(weights_only=True)`, which rebuilds tensors and plain containers and
refuses every other Python object (a class, a function) before creating it.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.weight_norm import WeightNorm

from audioae.errors import CheckpointError

SAFE_HINT = (
    "only tensors and plain containers are read from checkpoints. If you trust the file, re-save "
    "its weights as safetensors (stable-audio-tools: unwrap_model.py --use-safetensors) or as "
    "torch.save({'state_dict': model.state_dict()})"
)


def read_weights(path: str | Path) -> dict[str, Tensor]:
    """A flat {name: tensor} from .safetensors, or from a torch file holding a state dict or
    {"state_dict": ...} (a Lightning checkpoint); on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" (it contains {found.group(1)})" if found else ""
        raise CheckpointError(
            f"{path}: refused: loading it would create arbitrary Python objects{what}; {SAFE_HINT}"
        ) from None
    except Exception as e:  # truncated zip, not a torch file, ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({reason})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path}: holds no state dict (expected tensors by name)")
    tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors")
    return tensors


def check_finite(state: Mapping[str, Tensor], source: str | Path, hint: str = "") -> None:
    """Fail, naming the first tensor and how many of its values, when a floating-point tensor
    of `state` holds NaN or infinity: such a model outputs NaN (a diverged run, a corrupt
    file). `hint` ends the message (e.g. how to take other weights)."""
    for key in sorted(state):
        t = state[key]
        if t.is_floating_point() and not (finite := t.isfinite()).all():
            bad = int((~finite).sum())
            more = sum(
                1 for k, v in state.items() if k != key and v.is_floating_point()
                and not v.isfinite().all()
            )  # fmt: skip
            others = f" (and {more} more tensor(s))" if more else ""
            raise CheckpointError(
                f"{source}: weight {key} holds {bad} NaN or infinite value(s) of {t.numel()}"
                f"{others}: the model would output NaN (a diverged run or a corrupt file){hint}"
            )


def _listing(label: str, keys: list[str], limit: int = 12) -> list[str]:
    lines = [f"  {label}: {k}" for k in keys[:limit]]
    if len(keys) > limit:
        lines.append(f"  ... and {len(keys) - limit} more {label}")
    return lines


@dataclass
class Mismatch:
    """How a state dict fails to fit a model: key names (sorted), and for mis-shaped keys a
    description with both shapes. `fitting`: the part of the state dict that does fit."""

    missing: list[str]
    unexpected: list[str]
    shapes: list[str]
    fitting: dict[str, Tensor]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)

    def counts(self) -> str:
        """e.g. "2 missing, 1 shape"."""
        kinds = (("missing", self.missing), ("unexpected", self.unexpected), ("shape", self.shapes))
        return ", ".join(f"{len(v)} {name}" for name, v in kinds if v)

    def listing(self, limit: int = 12) -> list[str]:
        """One line per key (at most `limit` of each kind)."""
        return (
            _listing("missing", self.missing, limit)
            + _listing("unexpected", self.unexpected, limit)
            + _listing("shape", self.shapes, limit)
        )


def compare(model: nn.Module, state: Mapping[str, Tensor]) -> Mismatch:
    """What of `state` fits `model`'s state dict, by name and shape.

    One-element tensors fit either shape, () or (1,), and are reshaped in `fitting`:
    vector-quantize-pytorch stored its codebooks' `initted` flag as (1,) up to 1.14 (the version
    stable-audio-tools pins) and as a scalar since 1.15."""
    own = model.state_dict()
    state = {
        k: v.reshape(own[k].shape) if k in own and v.numel() == 1 == own[k].numel() else v
        for k, v in state.items()
    }
    shared = own.keys() & state.keys()
    return Mismatch(
        missing=sorted(own.keys() - state.keys()),
        unexpected=sorted(state.keys() - own.keys()),
        shapes=sorted(
            f"{k} {tuple(state[k].shape)} in the checkpoint, {tuple(own[k].shape)} in the model"
            for k in shared
            if own[k].shape != state[k].shape
        ),
        fitting={k: state[k] for k in shared if own[k].shape == state[k].shape},
    )


def load_strict(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """`model.load_state_dict(state, strict=True)`, with every mismatch listed by name (see
    `compare` for one-element tensors)."""
    mismatch = compare(model, state)
    if mismatch:
        lines = [f"{source}: the weights do not fit the model config ({mismatch.counts()} keys):"]
        raise CheckpointError("\n".join(lines + mismatch.listing()))
    model.load_state_dict(mismatch.fitting, strict=True)


def state_hash(state: Mapping[str, Tensor]) -> str:
    """sha256 of a state dict: names, dtypes, shapes and values; independent of the file format,
    so an exported or re-imported model keeps its fingerprint."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def fold_weight_norm(module: nn.Module) -> int:
    """Replace weight-normalised weights (w = g v / ||v||) by their value, in place; returns how
    many were folded. Outputs are unchanged; the per-forward re-normalisation is gone.

    Handles the hook API (`weight_g`/`weight_v`, used for stable-audio-tools key parity) and the
    parametrization API, and skips modules without weight norm (the reference's
    remove_weight_norm_from_model raises on those, its §11 item 24). The state dict then uses
    plain `weight` keys, so fold after loading weights and never before saving them.
    """
    folded = 0
    for m in list(module.modules()):
        for hook in [h for h in m._forward_pre_hooks.values() if isinstance(h, WeightNorm)]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                torch.nn.utils.remove_weight_norm(m, hook.name)
            folded += 1
        if parametrize.is_parametrized(m):
            for name in list(m.parametrizations.keys()):
                kinds = {type(p).__name__ for p in m.parametrizations[name]}
                if "_WeightNorm" in kinds:
                    parametrize.remove_parametrizations(m, name, leave_parametrized=True)
                    folded += 1
    return folded
