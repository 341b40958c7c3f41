"""Inference: load any trained or imported model, encode and decode audio of any length.

model, cfg = load_model("outputs/run")          # run dir, checkpoint, export or SAT model
optimize_for_inference(model)                   # same outputs, less work (no training!)
enc = encode_long(model, audio)                 # (B, C, T) -> latents (B, D, ceil(T/ratio))
stats = read_latent_stats("exports/my_vae")     # audioae-export --latent-stats, or None
audio = decode_long(model, enc.latents, enc.length)
"""

from audioae.inference.chunked import (
    CHUNK_SIZE,
    OVERLAP,
    Encoded,
    chunking,
    decode_codes_long,
    decode_long,
    encode_long,
)
from audioae.inference.fast import FrozenSnake, freeze_snakes, optimize_for_inference
from audioae.inference.latent_stats import read_latent_stats
from audioae.inference.loading import load_model, locate, model_config, read_config
from audioae.inference.weights import fold_weight_norm, load_strict, read_weights, state_hash

__all__ = [
    "CHUNK_SIZE",
    "OVERLAP",
    "Encoded",
    "FrozenSnake",
    "chunking",
    "decode_codes_long",
    "decode_long",
    "encode_long",
    "fold_weight_norm",
    "freeze_snakes",
    "load_model",
    "load_strict",
    "locate",
    "model_config",
    "optimize_for_inference",
    "read_config",
    "read_latent_stats",
    "read_weights",
    "state_hash",
]
