"""Chunked encode/decode: equal to whole-file processing within tolerance, any length, bounded
chunk sizes (memory), crossfade weights."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from audioae.errors import ConfigError
from audioae.inference import chunked, decode_long, encode_long
from audioae.inference.chunked import WHOLE, Windows, chunking, plan
from inference.inference_helpers import one_thread, smoke_model  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")

# The smoke encoder sees about 17.5 latent frames either side, the decoder 19: a quarter of the
# overlap (the margin never used at a chunk's edge) must cover that for float-rounding agreement.
CHUNK, OVERLAP = 192, 80
TOL = 1e-5  # measured max abs difference: about 1e-6 (latents ~1, audio ~0.3)


def whole(model, x):
    pad = -x.shape[-1] % model.downsampling_ratio
    with torch.no_grad():
        latents = model.encode(torch.nn.functional.pad(x, (0, pad)), sample=False).latents
        return latents, model.decode(latents)[..., : x.shape[-1]]


@pytest.fixture(scope="module")
def model():
    return smoke_model()


@pytest.mark.parametrize("length", [1, 7, 1000, CHUNK * 8, CHUNK * 8 * 5 + 13])
def test_chunked_equals_whole(model, length):
    x = torch.randn(2, 2, length)
    ref_latents, ref_audio = whole(model, x)
    enc = encode_long(model, x, CHUNK, OVERLAP)
    assert enc.length == length and enc.codes is None
    assert enc.latents.shape == (2, 8, -(-length // 8)) and enc.latents.dtype == torch.float32
    torch.testing.assert_close(enc.latents, ref_latents, rtol=0, atol=TOL)
    audio = decode_long(model, enc.latents, enc.length, CHUNK, OVERLAP)
    assert audio.shape == x.shape  # padding to the ratio is trimmed back
    torch.testing.assert_close(audio, ref_audio, rtol=0, atol=TOL)


def test_a_small_overlap_still_joins_smoothly(model):
    """A margin below the receptive field: not exact, but crossfaded. The largest frame-to-frame
    jump of the error (against the whole file) at the joins is compared with a hard cut of the
    same chunks at the same midpoints (fade 0). Measured on a 110 Hz tone, whose latents change
    slowly: 0.0093 against 0.0155 (0.48-0.61 of it for 55-440 Hz); random noise, whose chunk-edge
    errors dominate either way, does not separate the two."""
    t = torch.arange(64 * 8 * 6) / 44100
    x = 0.5 * torch.sin(2 * math.pi * 110 * t).expand(1, 2, -1).contiguous()
    ref, _ = whole(model, x)
    soft = encode_long(model, x, 64, 16).latents
    assert (soft - ref).abs().max() < 0.2 * ref.abs().max()

    spans = plan(ref.shape[-1], 64, 16)
    hard, cut = torch.zeros_like(ref), Windows(spans, 0)
    with torch.no_grad():
        for i, (start, end) in enumerate(spans):
            piece = model.encode(x[..., start * 8 : end * 8], sample=False).latents
            hard[..., start:end] += piece * cut[i]

    def join_step(latents):
        step = (latents - ref).diff(dim=-1).abs().amax(dim=(0, 1))  # step t: frames t, t + 1
        return max(step[b - 6 : b + 6].max() for b in cut.bounds)

    assert join_step(soft) < 0.75 * join_step(hard)


def test_each_chunk_is_bounded_whatever_the_length(model):
    seen = []
    encode, decode = model.encode, model.decode

    def spy_encode(audio, sample=True):
        seen.append(audio.shape[-1])
        return encode(audio, sample=sample)

    def spy_decode(latents):
        seen.append(latents.shape[-1] * 8)
        return decode(latents)

    model.encode, model.decode = spy_encode, spy_decode
    try:
        for seconds in (0.25, 2):
            enc = encode_long(model, torch.randn(1, 2, int(16000 * seconds)), 64, 16)
            decode_long(model, enc.latents, enc.length, 64, 16)
    finally:
        del model.encode, model.decode
    assert max(seen) == 64 * 8


def test_discrete_codes_switch_at_the_midpoint():
    model = smoke_model("bottleneck=rvq")
    x = torch.randn(1, 2, 8 * 700)
    with torch.no_grad():
        ref = model.encode(x, sample=False).codes
    enc = encode_long(model, x, CHUNK, OVERLAP)
    assert enc.codes is not None and enc.codes.dtype == torch.long
    assert torch.equal(enc.codes, ref)
    # the latents of a discrete model are taken from the same chunk as the codes
    torch.testing.assert_close(enc.latents, model.bottleneck.decode_tokens(ref), atol=TOL, rtol=0)


def test_sampling_is_seeded_and_differs_from_the_mean(model):
    x = torch.randn(1, 2, 8 * 500)
    torch.manual_seed(1)
    a = encode_long(model, x, 64, 16, sample=True).latents
    torch.manual_seed(1)
    b = encode_long(model, x, 64, 16, sample=True).latents
    assert torch.equal(a, b)
    assert not torch.allclose(a, encode_long(model, x, 64, 16).latents)


def test_plan_covers_with_enough_overlap():
    assert plan(10, 128, 32) == [(0, 10)]
    for frames in (129, 200, 1000, 1001, 5000):
        spans = plan(frames, 128, 32)
        assert spans[0][0] == 0 and spans[-1][1] == frames
        assert all(e - s == 128 for s, e in spans)
        assert all(a[1] - b[0] >= 32 for a, b in itertools.pairwise(spans))
        for fade, scale in ((16, 1), (0, 1), (16, 4)):
            weight = torch.zeros(frames * scale)
            windows = Windows(spans, fade, scale)
            for i, (s, e) in enumerate(spans):
                weight[s * scale : e * scale] += windows[i]
            torch.testing.assert_close(weight, torch.ones(frames * scale))
            if fade == 0:  # hard cuts: each position from exactly one chunk
                assert all(
                    set(windows[i].unique().tolist()) <= {0.0, 1.0} for i in range(len(spans))
                )


def test_bad_chunking_is_a_config_error(model):
    with pytest.raises(ConfigError, match="overlap"):
        encode_long(model, torch.randn(1, 2, 8000), 64, 40)


def test_chunking_is_one_rule_for_every_command():
    assert chunking() == (chunked.CHUNK_SIZE, chunked.OVERLAP) == (128, 32)
    assert chunking(40) == (40, 20)  # the default overlap lowered to half a small chunk
    assert chunking(0) == (WHOLE, 0) and chunking(0, 16) == (WHOLE, 0)  # whole files
    assert chunking(64, 32) == (64, 32) and chunking(10, 0) == (10, 0)
    with pytest.raises(ConfigError, match="overlap=8: must be between 0 and half"):
        chunking(10, 8)
    with pytest.raises(ConfigError, match="chunk_size=-1"):
        chunking(-1)
