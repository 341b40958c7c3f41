"""A model as ONNX graphs (`audioae-export RUN --format onnx --out DIR`), for onnxruntime.

DIR/encoder.onnx   audio (B, in_channels, T) -> latents (B, latent_dim, ceil(T / ratio)); VAE
                   latents are the mean; discrete models also output codes (B, n_codebooks, L)
DIR/decoder.onnx   latents (B, latent_dim, L) -> audio (B, out_channels, L * ratio)
DIR/codes_decoder.onnx   discrete models: codes (B, n_codebooks, L) int64 -> audio
DIR/onnx_config.json     sample_rate, downsampling_ratio, latent_dim, channels, inputs, outputs

The time axis (and the batch) is dynamic. The encoder zero-pads the end of the audio to a
multiple of the ratio inside the graph, as `audioae-encode` does; it runs the whole input at once
(audioae-encode --chunk-size 0); trim the decoded audio to T yourself.

The graphs come from the TorchScript exporter (`torch.onnx.export(..., dynamo=False)`) at opset
OPSET: it traces the model once with weight norm folded and Snake activations frozen
(inference/fast.py), so the graphs hold plain convolutions and element-wise ops that every
onnxruntime since 1.12 runs; nothing here needs a newer opset. (The dynamo exporter would need
onnxscript.) Tracing records Python arithmetic on shapes as constants, so `verify` runs every
graph at other lengths in onnxruntime and refuses one that fails or differs from the model.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audioae.autoencoder import AudioAutoencoder
from audioae.errors import AudioAEError
from audioae.inference.fast import FrozenSnake, optimize_for_inference

OPSET = 17
TOLERANCE = 1e-4  # relative to the largest output value
ENCODER, DECODER, CODES_DECODER, CONFIG = (
    "encoder.onnx", "decoder.onnx", "codes_decoder.onnx", "onnx_config.json",
)  # fmt: skip
FILES = (ENCODER, DECODER, CODES_DECODER, CONFIG)


class OnnxExportError(AudioAEError):
    """A model that the ONNX exporter cannot trace."""


class _Snake(nn.Module):
    """FrozenSnake without its in-place ops (`addcmul(out=)` has no ONNX symbol)."""

    def __init__(self, frozen: FrozenSnake):
        super().__init__()
        self.register_buffer("a", frozen.a)
        self.register_buffer("inv_b", frozen.inv_b)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.inv_b * torch.sin(self.a * x) ** 2


def _traceable(model: AudioAutoencoder) -> AudioAutoencoder:
    """`model` rewritten in place with weight norm folded and plain Snakes: what the graphs hold."""
    model = optimize_for_inference(model.eval())
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, FrozenSnake):
                setattr(parent, name, _Snake(child))
    return model


class _Encode(nn.Module):
    def __init__(self, model: AudioAutoencoder):
        super().__init__()
        self.model = model

    def forward(self, audio: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        ratio = self.model.downsampling_ratio
        audio = F.pad(audio, (0, (ratio - audio.shape[-1] % ratio) % ratio))
        result = self.model.bottleneck.encode(self.model.pre_bottleneck(audio), sample=False)
        return (result.latents, result.codes) if self.model.is_discrete else result.latents


class _Decode(nn.Module):
    def __init__(self, model: AudioAutoencoder, codes: bool = False):
        super().__init__()
        self.model, self.codes = model, codes

    def forward(self, x: Tensor) -> Tensor:
        return self.model.decode_tokens(x) if self.codes else self.model.decode(x)


def _export(module: nn.Module, example: Tensor, path: Path, inputs: list, outputs: list) -> None:
    axes = {name: {0: "batch", 2: "time"} for name in inputs + outputs}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic
            torch.onnx.export(
                module, (example,), str(path), input_names=inputs, output_names=outputs,
                dynamic_axes=axes, opset_version=OPSET, dynamo=False,
            )  # fmt: skip
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OnnxExportError(f"{path.name}: the ONNX exporter failed ({reason})") from None


def to_onnx(model: AudioAutoencoder, sample_rate: int, out: Path) -> dict:
    """Write the graphs and onnx_config.json into `out`, checked by `verify`; returns the config.
    `model` is rewritten for inference in place (weight norm folded): pass a copy to keep it.
    On an OnnxExportError the files written so far are removed."""
    try:
        import onnx  # noqa: F401  (the exporter's serialiser)
    except ImportError:
        raise OnnxExportError("onnx is not installed: pip install onnx onnxruntime") from None
    created = not out.exists()
    try:
        return _write(_traceable(model), int(sample_rate), out)
    except OnnxExportError:
        for name in FILES:
            (out / name).unlink(missing_ok=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def _write(model: AudioAutoencoder, sample_rate: int, out: Path) -> dict:
    ratio, frames = model.downsampling_ratio, 4
    audio = torch.zeros(1, model.in_channels, frames * ratio - ratio // 2)  # exercises the pad
    with torch.no_grad():
        encoded = _Encode(model)(audio)
    latents = encoded[0] if model.is_discrete else encoded
    out.mkdir(parents=True, exist_ok=True)
    enc_out = ["latents", "codes"] if model.is_discrete else ["latents"]
    _export(_Encode(model), audio, out / ENCODER, ["audio"], enc_out)
    _export(_Decode(model), latents, out / DECODER, ["latents"], ["audio"])
    if model.is_discrete:
        _export(_Decode(model, codes=True), encoded[1], out / CODES_DECODER, ["codes"], ["audio"])
    elif (out / CODES_DECODER).exists():
        (out / CODES_DECODER).unlink()  # a stale one from an earlier export
    config = {
        "sample_rate": sample_rate,
        "downsampling_ratio": ratio,
        "latent_dim": model.latent_dim,
        "in_channels": model.in_channels,
        "out_channels": model.out_channels,
        "opset": OPSET,
        "encoder": {"inputs": ["audio"], "outputs": enc_out},
        "decoder": {"inputs": ["latents"], "outputs": ["audio"]},
    }
    if model.is_discrete:
        config["codes_decoder"] = {"inputs": ["codes"], "outputs": ["audio"]}
        config["n_codebooks"] = int(encoded[1].shape[1])
    verify(model, out)
    (out / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return config


def _close(name: str, got, want: Tensor) -> None:
    want = want.numpy()
    if got.shape != want.shape:
        raise OnnxExportError(
            f"{name}: shape {got.shape} where the model gives {want.shape}: tracing froze a "
            "length (the TorchScript exporter records Python arithmetic on shapes as constants)"
        )
    err = float(abs(got - want).max() / max(abs(want).max(), 1e-12))
    if err > TOLERANCE:
        raise OnnxExportError(f"{name}: relative error {err:.1e} against the model")


@torch.no_grad()
def verify(model: AudioAutoencoder, out: Path) -> None:
    """Run the graphs in onnxruntime (CPU) at lengths other than the traced one, and compare with
    the model: OnnxExportError when a graph fails or differs (relative error > TOLERANCE,
    codes not equal), e.g. where tracing froze a shape. Skipped without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        print("note: onnxruntime is not installed; the graphs were not checked")
        return

    def run(name: str, x: Tensor) -> list:
        options = ort.SessionOptions()
        options.log_severity_level = 4  # the failure is reported below, in one line
        session = ort.InferenceSession(str(out / name), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x.numpy()}
        try:
            return session.run(None, feed)
        except Exception as e:  # onnxruntime raises its own types
            reason = str(e).strip().splitlines()[0]
            raise OnnxExportError(
                f"{name}: fails at {x.shape[-1]} time steps, so tracing froze a shape "
                f"({reason[:200]})"
            ) from None

    ratio, gen = model.downsampling_ratio, torch.Generator().manual_seed(0)
    for length in (3 * ratio, 7 * ratio + 1):
        audio = torch.randn(2, model.in_channels, length, generator=gen) * 0.5
        got = run(ENCODER, audio)
        want = _Encode(model)(audio)
        latents = want[0] if model.is_discrete else want
        _close(f"{ENCODER} at {length} samples", got[0], latents)
        if model.is_discrete:
            if not (got[1] == want[1].numpy()).all():
                raise OnnxExportError(f"{ENCODER} at {length} samples: codes differ")
            _close(CODES_DECODER, run(CODES_DECODER, want[1])[0], model.decode_tokens(want[1]))
        _close(f"{DECODER} at {latents.shape[-1]} frames", run(DECODER, latents)[0],
               model.decode(latents))  # fmt: skip
