import pytest
import torch

from audioae.train.schedulers import InverseLR


def test_inverse_lr_matches_the_reference_formula():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = InverseLR(opt, inv_gamma=2.0, power=0.5, warmup=0.5, final_lr=0.1)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [(1 - 0.5 ** (t + 1)) * max(0.1, (1 + t / 2.0) ** -0.5) for t in range(4)]
    assert lrs == pytest.approx(expected)
    assert lrs[0] == pytest.approx(0.5)  # t=0: warmup factor 1 - 0.5 = 0.5, decay 1


def test_inverse_lr_rejects_bad_warmup():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="warmup"):
        InverseLR(opt, warmup=1.0)
