"""fp16 loss scaling in Net.update and train_step, checked on the CPU with torch's GradScaler
(Accelerate only creates its scaler on a GPU; tests/test_gpu.py runs the real thing there)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from audioae.train.step import Net


def sgd_net(seed: int) -> Net:
    torch.manual_seed(seed)
    module = nn.Linear(3, 2)
    return Net(module, torch.optim.SGD(module.parameters(), lr=0.1), None, clip=0.0)


def scaled_backward(net: Net, scaler: torch.amp.GradScaler, x: torch.Tensor) -> None:
    scaler.scale(net.module(x).square().sum()).backward()


def test_two_networks_step_with_gradients_unscaled_once():
    """A joint step: both losses are scaled and back-propagated before either network
    updates; each must see its gradient divided by the scale exactly once."""
    x = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]])
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    acc = SimpleNamespace(scaler=scaler, num_processes=1)
    nets = [sgd_net(0), sgd_net(1)]
    refs = [sgd_net(0), sgd_net(1)]
    for net, ref in zip(nets, refs):
        scaled_backward(net, scaler, x)
        ref.module(x).square().sum().backward()
    norms = [net.update(acc) for net in nets]
    scaler.update()
    for net, ref, norm in zip(nets, refs, norms):
        grad = torch.cat([p.grad.flatten() for p in ref.module.parameters()])
        assert norm == pytest.approx(torch.linalg.vector_norm(grad).item(), rel=1e-6)
        ref.opt.step()
        for p, q in zip(net.module.parameters(), ref.module.parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    assert scaler.get_scale() == 1024.0  # no overflow, no growth yet


def test_an_overflow_skips_the_update_and_halves_the_scale():
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    acc = SimpleNamespace(scaler=scaler, num_processes=1)
    net = sgd_net(0)
    before = [p.detach().clone() for p in net.module.parameters()]
    x = torch.full((1, 3), 1e35)  # the scaled loss overflows float32
    scaled_backward(net, scaler, x)
    assert math.isinf(net.update(acc))
    scaler.update()
    assert scaler.get_scale() == 2.0**15
    for p, b in zip(net.module.parameters(), before):
        assert torch.equal(p, b)
    # the next step works (a skipped step must not leave the optimizer marked as unscaled)
    scaled_backward(net, scaler, torch.ones(1, 3))
    assert math.isfinite(net.update(acc))
    scaler.update()
    assert not torch.equal(net.module.weight, before[0])


@pytest.mark.parametrize("scaled", [False, True])
def test_clipping_rescales_the_gradient_to_the_threshold_and_returns_the_norm_before(scaled):
    """`optim.*.clip_grad_norm`: the update uses the gradient scaled to norm `clip`; the
    logged norm is the one before clipping; under fp16 the threshold applies to the unscaled
    gradient."""
    x = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]])
    net, ref = sgd_net(0), sgd_net(0)
    net.clip = 0.5
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0) if scaled else None
    acc = SimpleNamespace(scaler=scaler, num_processes=1)
    if scaled:
        scaled_backward(net, scaler, x)
    else:
        net.module(x).square().sum().backward()
    ref.module(x).square().sum().backward()
    grads = [p.grad.clone() for p in ref.module.parameters()]
    total = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads])).item()
    assert total > 2  # far above the threshold, so the clipping matters
    assert net.update(acc) == pytest.approx(total, rel=1e-6)
    for p, q, g in zip(net.module.parameters(), ref.module.parameters(), grads):
        torch.testing.assert_close(p, q.detach() - 0.1 * g * (0.5 / total), rtol=0, atol=1e-6)
