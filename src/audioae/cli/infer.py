"""Run a trained (or imported) autoencoder on audio files.

audioae-encode CKPT FILES... --out DIR        latents (.safetensors or .npy) + DIR/NAME.json
audioae-decode CKPT LATENTS... --out DIR      audio from latents (or codes)
audioae-reconstruct CKPT FILES... --out DIR   encode and decode: what the model makes of a file

CKPT: a run directory (newest checkpoint, EMA weights when present), a checkpoint folder, an
export (audioae-export) or a stable-audio-tools model (model_config.json + weights).
Files are read with soundfile (WAV, FLAC, OGG, MP3, ...), resampled to the model's rate and
converted to its channels. Long files are processed in overlapping chunks (--chunk-size and
--overlap, in latent frames) joined by crossfades; see audioae/inference/chunked.py.
Errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from audioae.cli.common import (
    add_chunk_options,
    add_device_option,
    parse_chunking,
    parse_device,
    run_command,
)
from audioae.errors import AudioAEError
from audioae.files import check_new, check_writable
from audioae.inference import latents as latents_file


def _parser(prog: str, description: str, inputs: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("checkpoint", metavar="CKPT", help="run dir, checkpoint, export or SAT model")
    p.add_argument("inputs", metavar=inputs, nargs="+", type=Path)
    p.add_argument("--out", "-o", required=True, type=Path, help="output folder (created)")
    add_chunk_options(p)
    add_device_option(p)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's choice)")
    p.add_argument("--no-ema", action="store_true", help="use online weights, not the EMA")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    return p


def _audio_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="wav", help="audio file type: wav (default), flac, ...")
    p.add_argument(
        "--subtype", default=None, help="soundfile subtype; default FLOAT for wav, PCM_24 for flac"
    )


def _check_audio_format(args: argparse.Namespace) -> None:
    """Fail before any work on an audio format or subtype soundfile cannot write."""
    from audioae.inference.audio import audio_subtype

    audio_subtype(args.format, args.subtype)


class Session:
    """The loaded model and what every file needs from the command line."""

    def __init__(self, args: argparse.Namespace):
        from audioae.inference import load_model, optimize_for_inference, state_hash

        self.args = args
        self.chunk, self.overlap = parse_chunking(args)
        self.device = parse_device(args.device)
        if args.threads < 0:
            raise AudioAEError(f"--threads {args.threads}: must be >= 0")
        if args.threads:
            torch.set_num_threads(args.threads)
        self.model, self.cfg = load_model(args.checkpoint, ema=not args.no_ema)
        self.model_hash = state_hash(self.model.state_dict())
        optimize_for_inference(self.model)  # after hashing: it renames the weights
        self.model.to(self.device)

    def read(self, path: Path) -> tuple[torch.Tensor, dict]:
        from audioae.inference.audio import read_audio, to_model

        audio, rate = read_audio(path)
        m = self.model
        x = to_model(audio, rate, m.sample_rate, m.data_channels, str(path))
        x = m.inputs_and_targets(x)[0]  # the encoder's input, by the rule training uses
        source = {"file": str(path), "sample_rate": rate, "channels": audio.shape[0],
                  "length": audio.shape[1]}  # fmt: skip
        return x, source

    def encode(self, x: torch.Tensor, sample: bool):
        from audioae.inference import encode_long

        return encode_long(self.model, x[None], self.chunk, self.overlap, sample=sample)

    def decode(self, latents: torch.Tensor, length: int | None) -> torch.Tensor:
        from audioae.inference import decode_long

        return decode_long(self.model, latents[None], length, self.chunk, self.overlap)[0]

    def check_audio_format(self) -> None:
        """Fail before the model runs when the codec refuses the model's rate or channels."""
        from audioae.inference.audio import check_writable_audio

        m = self.model
        check_writable_audio(self.args.format, self.args.subtype, m.sample_rate, m.out_channels)

    def write_audio(self, path: Path, audio: torch.Tensor) -> None:
        from audioae.inference.audio import write_audio

        write_audio(path, audio, self.model.sample_rate, self.args.subtype)


def _outputs(args: argparse.Namespace, suffix: str, latents: bool = False) -> list[Path]:
    """One output per input, named after it, in a writable --out; refuses collisions,
    overwriting an input and (without --force) overwriting any existing file."""
    inputs, out = args.inputs, args.out
    for f in inputs:
        if not f.exists():
            raise AudioAEError(f"{f}: no such file")
        if f.is_dir():
            raise AudioAEError(f"{f}: a folder; give its files (e.g. {f}/*.wav)")
    paths = [out / (latents_file.stem(f) + suffix) for f in inputs]
    seen: dict[Path, Path] = {}
    for f, p in zip(inputs, paths):
        if p in seen:
            raise AudioAEError(f"{f} and {seen[p]} would both be written to {p}; rename one")
        if p.resolve() in {i.resolve() for i in inputs}:
            raise AudioAEError(f"{p} would overwrite an input; choose another --out folder")
        seen[p] = f
    check_writable(out)
    written = [w for p in paths for w in (latents_file.outputs(p) if latents else [p])]
    check_new(written, args.force)
    return paths


def _progress(items, prog: str):
    return tqdm(items, desc=prog, unit="file", file=sys.stderr, disable=None)


# --- encode -------------------------------------------------------------------------------------


def encode_main(argv: Sequence[str] | None = None) -> None:
    p = _parser("audioae-encode", "Encode audio files to latents.", "FILES")
    p.add_argument("--format", choices=latents_file.FORMATS, default="safetensors")
    p.add_argument("--sample", action="store_true", help="VAE: draw latents (default: the mean)")
    p.add_argument("--seed", type=int, default=0, help="seed for --sample (per file)")
    args = p.parse_args(argv)
    run_command(p.prog, lambda: _encode(args))


def _encode(args: argparse.Namespace) -> None:
    outs = _outputs(args, f".{args.format}", latents=True)
    s = Session(args)
    args.out.mkdir(parents=True, exist_ok=True)
    for f, out in zip(_progress(args.inputs, "audioae-encode"), outs):
        x, source = s.read(f)
        torch.manual_seed(args.seed)
        enc = s.encode(x, args.sample)
        latents = enc.latents[0].contiguous()
        codes = enc.codes[0].contiguous() if enc.codes is not None else None
        meta = latents_file.metadata(
            s.model, str(args.checkpoint), s.model_hash, source, enc.length, latents, codes,
            args.sample, args.seed, 0 if args.chunk_size == 0 else s.chunk, s.overlap,
        )  # fmt: skip
        latents_file.save_latents(out, latents, codes, meta)


# --- decode -------------------------------------------------------------------------------------


def decode_main(argv: Sequence[str] | None = None) -> None:
    p = _parser("audioae-decode", "Decode latents (audioae-encode's files) to audio.", "LATENTS")
    _audio_options(p)
    p.add_argument("--from-codes", action="store_true", help="discrete models: decode the codes")
    args = p.parse_args(argv)
    run_command(p.prog, lambda: _decode(args))


def _decode(args: argparse.Namespace) -> None:
    _check_audio_format(args)
    outs = _outputs(args, f".{args.format}")
    s = Session(args)
    s.check_audio_format()
    m = s.model
    if args.from_codes and not m.is_discrete:
        raise AudioAEError("--from-codes: the model's bottleneck is continuous; it has no codes")
    args.out.mkdir(parents=True, exist_ok=True)
    for f, out in zip(_progress(args.inputs, "audioae-decode"), outs):
        latents, codes, meta = latents_file.load_latents(f)
        frames = (latents if latents is not None else codes).shape[-1]
        length = latents_file.decode_length(f, meta, frames, m.sample_rate, m.downsampling_ratio)
        if meta.get("model_hash") and meta["model_hash"] != s.model_hash:
            print(
                f"audioae-decode: warning: {f} was encoded by model {str(meta['model_hash'])[:12]}"
                f", decoding with {s.model_hash[:12]}",
                file=sys.stderr,
            )
        if args.from_codes and codes is None:
            raise AudioAEError(f"{f}: holds no codes (--from-codes)")
        if codes is not None and (args.from_codes or latents is None):
            if not m.is_discrete:
                raise AudioAEError(f"{f}: holds codes but the model's bottleneck is continuous")
            from audioae.inference import decode_codes_long

            b = m.bottleneck
            latents_file.check_codes(
                f, codes, getattr(b, "num_quantizers", None), getattr(b, "codebook_size", None)
            )

            audio = decode_codes_long(m, codes[None], length, s.chunk, s.overlap)[0]
        else:
            if latents.shape[0] != m.latent_dim:
                raise AudioAEError(
                    f"{f}: latents have {latents.shape[0]} channels but the model's latent_dim "
                    f"is {m.latent_dim} (encoded with another model?)"
                )
            audio = s.decode(latents.float(), length)
        s.write_audio(out, audio)


# --- reconstruct --------------------------------------------------------------------------------


def reconstruct_main(argv: Sequence[str] | None = None) -> None:
    p = _parser("audioae-reconstruct", "Encode and decode audio files.", "FILES")
    _audio_options(p)
    p.add_argument("--sample", action="store_true", help="VAE: draw latents (default: the mean)")
    p.add_argument("--seed", type=int, default=0, help="seed for --sample (per file)")
    args = p.parse_args(argv)
    run_command(p.prog, lambda: _reconstruct(args))


def _reconstruct(args: argparse.Namespace) -> None:
    _check_audio_format(args)
    outs = _outputs(args, f".{args.format}")
    s = Session(args)
    s.check_audio_format()
    args.out.mkdir(parents=True, exist_ok=True)
    for f, out in zip(_progress(args.inputs, "audioae-reconstruct"), outs):
        x, _ = s.read(f)
        torch.manual_seed(args.seed)
        enc = s.encode(x, args.sample)
        s.write_audio(out, s.decode(enc.latents[0], enc.length))
