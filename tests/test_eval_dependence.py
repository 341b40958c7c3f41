"""The input dependence of audioae-eval (evaluate.Dependence) on hand-made signals."""

from __future__ import annotations

import pytest
import torch

from audioae.evaluate import Dependence
from audioae.metrics import mel_distance

RATE = 16000


def files(count: int, seconds: float = 0.5) -> list[torch.Tensor]:
    torch.manual_seed(0)
    t = torch.arange(round(seconds * RATE)) / RATE
    # different tones in noise: files whose spectra differ
    return [
        torch.stack([torch.sin(2 * torch.pi * (200 + 150 * i) * t)] * 2) * 0.3
        + 0.01 * torch.randn(2, t.numel())
        for i in range(count)
    ]


def test_a_collapsed_model_scores_0_identity_1_and_a_half_copy_between():
    refs = files(4)
    constant = torch.randn(2, refs[0].shape[-1]) * 0.05  # the same output for every input
    dep = Dependence(RATE)
    for i, ref in enumerate(refs):
        scopes = ["", "a" if i < 2 else "b"]
        dep.add(scopes, {"reference": ref, "model": constant, "identity": ref, "half": 0.5 * ref})
    overall = dep.ratios("")
    assert overall["model"] == 0.0
    assert overall["identity"] == pytest.approx(1.0, abs=1e-12)
    # by hand: the sums over the consecutive pairs (0, 1), (1, 2), (2, 3)
    pairs = list(zip(refs[1:], refs[:-1]))
    want = sum(float(mel_distance(0.5 * a, 0.5 * b, RATE)) for a, b in pairs) / sum(
        float(mel_distance(a, b, RATE)) for a, b in pairs
    )
    assert overall["half"] == pytest.approx(want, rel=1e-6)
    assert 0 < overall["half"] < 1  # the linear term of the distance halves, the log one not
    # folder a pairs files 0 and 1 only; folder b, files 2 and 3
    a = float(mel_distance(0.5 * refs[1], 0.5 * refs[0], RATE)) / float(
        mel_distance(refs[1], refs[0], RATE)
    )
    assert dep.ratios("a")["half"] == pytest.approx(a, rel=1e-6)
    assert set(dep.ratios("b")) == {"model", "identity", "half"}


def test_pairs_use_the_shorter_file_and_too_few_files_give_nothing():
    dep = Dependence(RATE)
    long, short = files(2, 0.5)[0], files(2, 0.2)[1]
    dep.add([""], {"reference": long, "model": long})
    assert dep.ratios("") == {}  # one file: no pair
    dep.add([""], {"reference": short, "model": short})
    assert dep.ratios("")["model"] == pytest.approx(1.0)
    tiny = torch.zeros(2, 100)  # under the 2048-sample STFT's minimum: not paired
    dep.add([""], {"reference": tiny, "model": tiny})
    assert dep.ratios("")["model"] == pytest.approx(1.0)
