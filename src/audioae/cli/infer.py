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
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audioae.errors import AudioAEError

LATENT_FORMATS = ("safetensors", "npy")


def _parser(prog: str, description: str, inputs: str) -> argparse.ArgumentParser:
    from audioae.inference import CHUNK_SIZE, OVERLAP

    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("checkpoint", metavar="CKPT", help="run dir, checkpoint, export or SAT model")
    p.add_argument("inputs", metavar=inputs, nargs="+", type=Path)
    p.add_argument("--out", "-o", required=True, type=Path, help="output folder (created)")
    p.add_argument(
        "--chunk-size",
        type=int,
        default=CHUNK_SIZE,
        help=f"latent frames per chunk (default {CHUNK_SIZE}); 0: whole files at once",
    )
    p.add_argument(
        "--overlap",
        type=int,
        default=OVERLAP,
        help=f"latent frames shared by neighbouring chunks (default {OVERLAP}); a quarter of "
        "it should cover the network's receptive field",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's choice)")
    p.add_argument("--no-ema", action="store_true", help="use online weights, not the EMA")
    return p


def _audio_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="wav", help="audio file type: wav (default), flac, ...")
    p.add_argument(
        "--subtype", default=None, help="soundfile subtype; default FLOAT for wav, PCM_24 for flac"
    )


def _check_audio_format(args: argparse.Namespace) -> None:
    """Fail before any work on an audio format or subtype soundfile cannot write."""
    import soundfile as sf

    fmt = args.format.upper()
    if fmt not in sf.available_formats():
        choices = ", ".join(sorted(f.lower() for f in sf.available_formats()))
        raise AudioAEError(f"--format {args.format}: not a format soundfile writes ({choices})")
    if args.subtype and not sf.check_format(fmt, args.subtype):
        raise AudioAEError(f"--subtype {args.subtype}: not valid for {args.format}")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AudioAEError(f"--device {name}: not a device (cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AudioAEError(f"--device {name}: CUDA is not available on this machine")
    return device


class Session:
    """The loaded model and what every file needs from the command line."""

    def __init__(self, args: argparse.Namespace):
        from audioae.inference import load_model, optimize_for_inference, state_hash

        self.args = args
        self.device = _device(args.device)
        if args.threads < 0:
            raise AudioAEError(f"--threads {args.threads}: must be >= 0")
        if args.threads:
            torch.set_num_threads(args.threads)
        self.model, self.cfg = load_model(args.checkpoint, ema=not args.no_ema)
        self.model_hash = state_hash(self.model.state_dict())
        optimize_for_inference(self.model)  # after hashing: it renames the weights
        self.model.to(self.device)
        if args.chunk_size < 0:
            raise AudioAEError(f"--chunk-size {args.chunk_size}: must be >= 0")
        self.chunk = args.chunk_size or sys.maxsize // 2
        self.overlap = args.overlap if args.chunk_size else 0

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

    def write_audio(self, path: Path, audio: torch.Tensor) -> None:
        from audioae.inference.audio import write_audio

        write_audio(path, audio, self.model.sample_rate, self.args.subtype)


def _outputs(inputs: Sequence[Path], out: Path, suffix: str) -> list[Path]:
    """One output per input, named after it; refuses collisions and overwriting an input."""
    for f in inputs:
        if not f.exists():
            raise AudioAEError(f"{f}: no such file")
    paths = [out / (_stem(f) + suffix) for f in inputs]
    seen: dict[Path, Path] = {}
    for f, p in zip(inputs, paths):
        if p in seen:
            raise AudioAEError(f"{f} and {seen[p]} would both be written to {p}; rename one")
        if p.resolve() in {i.resolve() for i in inputs}:
            raise AudioAEError(f"{p} would overwrite an input; choose another --out folder")
        seen[p] = f
    return paths


def _stem(path: Path) -> str:
    name = path.name
    for ending in (".codes.npy", ".safetensors", ".npy", ".json"):
        if name.endswith(ending):
            return name[: -len(ending)]
    return path.stem


def _run(prog: str, body: Callable[[], None]) -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        body()
    except AudioAEError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # disk full, permission denied while writing
        print(f"{prog}: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _progress(items, prog: str):
    return tqdm(items, desc=prog, unit="file", file=sys.stderr, disable=None)


# --- encode -------------------------------------------------------------------------------------


def encode_main(argv: Sequence[str] | None = None) -> None:
    p = _parser("audioae-encode", "Encode audio files to latents.", "FILES")
    p.add_argument("--format", choices=LATENT_FORMATS, default="safetensors")
    p.add_argument("--sample", action="store_true", help="VAE: draw latents (default: the mean)")
    p.add_argument("--seed", type=int, default=0, help="seed for --sample (per file)")
    args = p.parse_args(argv)
    _run(p.prog, lambda: _encode(args))


def _encode(args: argparse.Namespace) -> None:
    outs = _outputs(args.inputs, args.out, f".{args.format}")
    s = Session(args)
    args.out.mkdir(parents=True, exist_ok=True)
    for f, out in zip(_progress(args.inputs, "audioae-encode"), outs):
        x, source = s.read(f)
        torch.manual_seed(args.seed)
        enc = s.encode(x, args.sample)
        latents = enc.latents[0].contiguous()
        codes = enc.codes[0].contiguous() if enc.codes is not None else None
        meta = _metadata(s, source, enc.length, latents, codes, args)
        _save_latents(out, latents, codes, meta)


def _metadata(s: Session, source: dict, length: int, latents, codes, args) -> dict:
    m = s.model
    return {
        "audioae_version": version("audioae"),
        "model": str(args.checkpoint),
        "model_hash": s.model_hash,
        "sample_rate": m.sample_rate,
        "channels": m.in_channels,
        "length": length,
        "downsampling_ratio": m.downsampling_ratio,
        "latent_dim": m.latent_dim,
        "frames": latents.shape[-1],
        "latents": "sample" if args.sample else "mean",
        "seed": args.seed if args.sample else None,
        "discrete": m.is_discrete,
        "codebooks": codes.shape[0] if codes is not None else None,
        "chunk_size": args.chunk_size,
        "overlap": args.overlap,
        "source": source,
    }


def _save_latents(out: Path, latents, codes, meta: dict) -> None:
    from safetensors.torch import save_file

    base = out.with_name(_stem(out))
    if out.suffix == ".safetensors":
        tensors = {"latents": latents.cpu()}
        if codes is not None:
            tensors["codes"] = codes.cpu()
        save_file(tensors, out, metadata={"audioae": json.dumps(meta)})
    else:
        np.save(out, latents.cpu().numpy())
        if codes is not None:
            np.save(base.with_name(base.name + ".codes.npy"), codes.cpu().numpy())
    base.with_name(base.name + ".json").write_text(json.dumps(meta, indent=2) + "\n")


# --- decode -------------------------------------------------------------------------------------


def decode_main(argv: Sequence[str] | None = None) -> None:
    p = _parser("audioae-decode", "Decode latents (audioae-encode's files) to audio.", "LATENTS")
    _audio_options(p)
    p.add_argument("--from-codes", action="store_true", help="discrete models: decode the codes")
    args = p.parse_args(argv)
    _run(p.prog, lambda: _decode(args))


def _load_latents(path: Path) -> tuple[torch.Tensor | None, torch.Tensor | None, dict]:
    """(latents (D, L) or None, codes (Q, L) or None, metadata) of an encoded file."""
    base = path.with_name(_stem(path))
    sidecar = base.with_name(base.name + ".json")
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
            coded = base.with_name(base.name + ".codes.npy")
            codes = torch.from_numpy(np.load(coded, allow_pickle=False)) if coded.exists() else None
        else:
            raise AudioAEError(f"{path}: expected .safetensors or .npy latents")
    except AudioAEError:
        raise
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AudioAEError(f"{path}: cannot read latents ({reason})") from None
    for name, t in (("latents", latents), ("codes", codes)):
        if t is not None and t.dim() == 3 and t.shape[0] == 1:
            t = t[0]
        if t is not None and t.dim() != 2:
            raise AudioAEError(f"{path}: {name} of shape {tuple(t.shape)}, expected (dim, frames)")
        if name == "latents":
            latents = t
        else:
            codes = t
    if latents is None and codes is None:
        raise AudioAEError(f"{path}: holds neither latents nor codes")
    return latents, codes, meta


def _decode(args: argparse.Namespace) -> None:
    _check_audio_format(args)
    outs = _outputs(args.inputs, args.out, f".{args.format}")
    s = Session(args)
    m = s.model
    args.out.mkdir(parents=True, exist_ok=True)
    for f, out in zip(_progress(args.inputs, "audioae-decode"), outs):
        latents, codes, meta = _load_latents(f)
        if meta.get("model_hash") and meta["model_hash"] != s.model_hash:
            print(
                f"audioae-decode: warning: {f} was encoded by model {meta['model_hash'][:12]}, "
                f"decoding with {s.model_hash[:12]}",
                file=sys.stderr,
            )
        if meta.get("sample_rate") not in (None, m.sample_rate):
            raise AudioAEError(
                f"{f}: encoded at {meta['sample_rate']} Hz, the model runs at {m.sample_rate} Hz"
            )
        length = meta.get("length")
        if codes is not None and (args.from_codes or latents is None):
            if not m.is_discrete:
                raise AudioAEError(f"{f}: holds codes but the model's bottleneck is continuous")
            from audioae.inference import decode_codes_long

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
    _run(p.prog, lambda: _reconstruct(args))


def _reconstruct(args: argparse.Namespace) -> None:
    _check_audio_format(args)
    outs = _outputs(args.inputs, args.out, f".{args.format}")
    s = Session(args)
    args.out.mkdir(parents=True, exist_ok=True)
    for f, out in zip(_progress(args.inputs, "audioae-reconstruct"), outs):
        x, _ = s.read(f)
        torch.manual_seed(args.seed)
        enc = s.encode(x, args.sample)
        s.write_audio(out, s.decode(enc.latents[0], enc.length))
