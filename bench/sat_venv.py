"""Importing stable-audio-tools inside its throwaway venv (docs/benchmarks.md, "SAT's throwaway
venv"). Every script that runs there uses this one function: bench/sat_compare.py's worker (which
gets its source text), bench/inference.py, tests/sat_parity_worker.py and the fixture scripts
under tests/. Standard library only, so any of them can take it.
"""

from __future__ import annotations

import importlib
import sys
from unittest import mock

STUBBED: list[str] = []  # the modules replaced by stubs, for the scripts' reports


def import_sat(*modules: str) -> None:
    """Import `stable_audio_tools.MODULE` for each of `modules`. Modules that they import at the
    top but that the autoencoder and its training never use here (torchsde, einops_exts, wandb,
    torchaudio.prototype, ...) are stubbed when missing. 0.0.20's training step logs an
    update-to-weight ratio with tensors it makes on "cuda": that logged scalar is 0 here, and
    nothing trained depends on it."""
    for _ in range(40):
        try:
            for name in modules:
                importlib.import_module(f"stable_audio_tools.{name}")
            break
        except ModuleNotFoundError as e:
            if not e.name or e.name.startswith("stable_audio_tools"):
                raise
            STUBBED.append(e.name)
            parts = e.name.split(".")
            for i in range(1, len(parts) + 1):
                sys.modules.setdefault(".".join(parts[:i]), mock.MagicMock())
            for name in [m for m in sys.modules if m.startswith("stable_audio_tools")]:
                del sys.modules[name]
    else:
        raise RuntimeError("cannot import stable_audio_tools")
    training = sys.modules.get("stable_audio_tools.training.autoencoders")
    if training is not None and hasattr(training, "calc_update_to_weight_ratio"):
        training.calc_update_to_weight_ratio = lambda *args, **kwargs: 0.0
