import pytest
import torch
from torch import nn

from audioae.errors import ConfigError
from audioae.train.ema import EMA


def test_ema_arithmetic():
    online = nn.Linear(1, 1, bias=False)
    ema = EMA(nn.Linear(1, 1, bias=False), decay=0.5, power=1.0)
    values = [2.0, 4.0, 8.0]
    for v in values:
        online.weight.data.fill_(v)
        ema.update(online)
    # n=1 copies (2); n=2: decay min(0.5, 1 - 1/2) = 0.5 -> 0.5*2 + 0.5*4 = 3;
    # n=3: decay min(0.5, 2/3) = 0.5 -> 0.5*3 + 0.5*8 = 5.5
    assert ema.model.weight.item() == pytest.approx(5.5)
    assert int(ema.updates) == 3


def test_decay_warms_up_to_its_ceiling():
    ema = EMA(nn.Linear(1, 1), decay=0.9999, power=0.75)
    assert ema.decay_at(1) == 0.0
    assert ema.decay_at(2) == pytest.approx(1 - 2**-0.75)  # 0.405, as ema-pytorch
    assert ema.decay_at(10**9) == 0.9999


def test_ema_state_round_trips_and_stays_in_eval():
    ema = EMA(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)))
    ema.train()
    assert not ema.model.training
    ema.update(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)))
    other = EMA(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)))
    other.load_state_dict(ema.state_dict())
    assert int(other.updates) == 1
    assert torch.equal(other.model[0].weight, ema.model[0].weight)


def test_buffers_are_copied_not_averaged():
    online = nn.BatchNorm1d(1)
    ema = EMA(nn.BatchNorm1d(1), decay=0.5, power=1.0)
    ema.update(online)
    online.running_mean.fill_(4.0)
    online.num_batches_tracked.fill_(7)  # an integer buffer, like a codebook's "initted" flag
    ema.update(online)
    assert ema.model.running_mean.item() == 4.0
    assert ema.model.num_batches_tracked.item() == 7


def test_every_and_start_follow_stable_audio_tools_0_0_20():
    """every=2, start=1: calls 1, 3, 5 do nothing; call 2 is update 1 (a copy), call 4 update 2
    (still a copy: decay_at(2 - 1) = 0), call 6 update 3 (decay min(0.5, 1 - 2^-1) = 0.5)."""
    online = nn.Linear(1, 1, bias=False)
    ema = EMA(nn.Linear(1, 1, bias=False), decay=0.5, power=1.0, every=2, start=1)
    ema.model.weight.data.fill_(-1.0)
    seen = []
    for v in [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]:
        online.weight.data.fill_(v)
        ema.update(online)
        seen.append(ema.model.weight.item())
    assert seen == [-1.0, 4.0, 4.0, 8.0, 8.0, 10.0]  # 0.5 * 8 + 0.5 * 12
    assert int(ema.updates) == 6
    with pytest.raises(ConfigError, match="every=0"):
        EMA(nn.Linear(1, 1), every=0)
