"""`audioae-export RUN --out DIR [--sat]`: a trained model as a self-contained folder.

DIR/model.safetensors   the autoencoder's weights (the EMA copy when the run kept one)
DIR/config.yaml         the run's resolved config; an autoencoder pretransform's `path` is
                        replaced by its config (its weights are in model.safetensors)
DIR/model_config.json   with --sat: stable-audio-tools' config, so that its loader (and
                        audioae's) reads DIR as a stable-audio-tools model

Our state-dict keys are the reference's (encoder.*, decoder.*, bottleneck.*,
pretransform.model.*, weight_g/weight_v), so one model.safetensors serves both layouts.
RUN is anything audioae-encode accepts (a run dir: its newest checkpoint).

    audioae-export outputs/2025-01-01/12-00-00 --out exports/my_vae --sat
    audioae-encode exports/my_vae song.flac --out latents/
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from audioae.errors import AudioAEError


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="audioae-export", description=__doc__.splitlines()[0])
    p.add_argument("run", metavar="RUN", help="run dir, checkpoint, export or SAT model")
    p.add_argument("--out", "-o", required=True, type=Path, help="output folder (created)")
    p.add_argument("--sat", action="store_true", help="also write model_config.json (SAT)")
    p.add_argument("--no-ema", action="store_true", help="export the online weights")
    p.add_argument("--force", action="store_true", help="overwrite an existing export")
    args = p.parse_args(argv)
    try:
        export(args.run, args.out, sat=args.sat, ema=not args.no_ema, force=args.force)
    except AudioAEError as e:
        print(f"audioae-export: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        print(f"audioae-export: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        sys.exit(2)


def export(run: str | Path, out: Path, sat: bool = False, ema: bool = True, force: bool = False):
    """Write the export folder; returns the hash of the exported weights."""
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    from audioae.build import build_autoencoder
    from audioae.inference.loading import (
        CONFIG,
        SAT_CONFIG,
        WEIGHTS,
        locate,
        read_config,
        read_state,
    )
    from audioae.inference.weights import load_strict, state_hash

    source = locate(run)
    cfg = read_config(run, source)
    state = read_state(source, ema=ema)
    load_strict(build_autoencoder(cfg), state, str(source.weights))  # fails before writing
    sat_config = None
    if sat:
        from audioae.inference.sat import to_sat

        sat_config = to_sat(cfg)
    existing = [n for n in (WEIGHTS, CONFIG, SAT_CONFIG) if (out / n).exists()]
    if existing and not force:
        raise AudioAEError(f"{out} already holds {', '.join(existing)}; add --force to replace")
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in state.items()}
    save_file(tensors, out / WEIGHTS, metadata={"format": "pt"})
    OmegaConf.save(cfg, out / CONFIG, resolve=True)
    if sat_config is not None:
        (out / SAT_CONFIG).write_text(json.dumps(sat_config, indent=4) + "\n")
    elif (out / SAT_CONFIG).exists():
        (out / SAT_CONFIG).unlink()  # a stale one from an earlier --sat export
    digest = state_hash(tensors)
    print(f"exported {source.weights} (sha256 {digest[:16]}) to {out}")
    return digest
