"""Checks shared by the network tests."""

from __future__ import annotations

import copy

import torch
from torch import nn


def assert_deepcopy_trains_apart(module: nn.Module, x: torch.Tensor) -> None:
    """`copy.deepcopy(module)` (as the EMA makes it) equals its source, and then the two train
    apart: an SGD step on one changes its own weights and outputs and leaves the other's exactly
    as they were. A copy sharing tensors, or weight-norm hooks reading the other module's
    parameters or cached weights, fails here."""
    twin = copy.deepcopy(module)
    for a, b in zip(module.state_dict().values(), twin.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    def state(m: nn.Module) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        with torch.no_grad():
            return {k: v.clone() for k, v in m.state_dict().items()}, m(x).clone()

    def step(m: nn.Module) -> None:
        opt = torch.optim.SGD(m.parameters(), lr=0.5)
        opt.zero_grad()
        m(x).square().mean().backward()
        opt.step()

    for trained, other in ((twin, module), (module, twin)):
        (trained_before, trained_out), (other_before, other_out) = state(trained), state(other)
        step(trained)
        (trained_after, trained_new), (other_after, other_new) = state(trained), state(other)
        torch.testing.assert_close(other_new, other_out, rtol=0, atol=0)
        for k, v in other_after.items():
            torch.testing.assert_close(v, other_before[k], rtol=0, atol=0, msg=k)
        changed = [k for k, v in trained_after.items() if not torch.equal(v, trained_before[k])]
        assert changed and set(changed) <= {k for k, _ in trained.named_parameters()}
        assert (trained_new - trained_out).abs().max() > 1e-4
