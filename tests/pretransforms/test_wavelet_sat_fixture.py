"""The wavelet pretransform against stable-audio-tools' own output, frozen in a fixture.

fixtures/wavelet_sat.npz was written once by fixtures/make_wavelet_fixture.py from
stable-audio-tools' `WaveletEncode1d` / `WaveletDecode1d` (commit in the file's `source`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from audioae.pretransforms.wavelet import WAVELETS, Wavelet

FIXTURE = np.load(Path(__file__).parent / "fixtures" / "wavelet_sat.npz")
CASES = sorted(k.removeprefix("enc_") for k in FIXTURE.files if k.startswith("enc_"))


def test_fixture_covers_every_wavelet_and_names_its_source():
    assert {case.split("_")[0] for case in CASES} == set(WAVELETS)
    assert len(CASES) == 15
    assert str(FIXTURE["source"]).startswith("stable-audio-tools 50049e37")


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_buffers_equal_the_reference_buffers(wavelet):
    module = Wavelet(2, 1, wavelet)
    assert torch.equal(module.encoder.kernel, torch.from_numpy(FIXTURE[f"kenc_{wavelet}"]))
    assert torch.equal(module.decoder.kernel, torch.from_numpy(FIXTURE[f"kdec_{wavelet}"]))


@pytest.mark.parametrize("case", CASES)
def test_encode_and_decode_are_bit_identical_to_the_reference(case):
    wavelet, levels, channels = case.split("_")
    levels, channels = int(levels[1:]), int(channels[1:])
    module = Wavelet(channels, levels, wavelet)
    x = torch.from_numpy(FIXTURE[f"x{channels}"])
    enc, dec = (torch.from_numpy(FIXTURE[f"{k}_{case}"]) for k in ("enc", "dec"))
    assert enc.shape == (1, channels * 2**levels, 64 // 2**levels)
    # the reference's float32 operations: bitwise equal on the Xeon the fixture was made on; on
    # an AMD EPYC the convolution kernels sum in another order, up to 4.8e-7 (2 ulp) apart
    torch.testing.assert_close(module.encode(x), enc, rtol=0, atol=1e-6)
    torch.testing.assert_close(module.decode(enc), dec, rtol=0, atol=1e-6)
    assert (dec - x).abs().max() < 1e-5  # and the fixture itself is a round trip
