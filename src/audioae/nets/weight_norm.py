"""Weight normalisation (Salimans & Kingma, 2016) with stable-audio-tools' parameter names.

The deprecated hook API (`torch.nn.utils.weight_norm`) is used on purpose: it names the
parameters `weight_g` and `weight_v`, as in reference checkpoints, where the newer
parametrisation API would name them `parametrizations.weight.original0/1`.
"""

import copy
import warnings
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.nn.utils.weight_norm import WeightNorm


def wn(module: nn.Module) -> nn.Module:
    """Weight-normalise a conv: weight = g * v / ||v||, the norm over all dims but 0.

    The deprecated hook API is kept on purpose: it gives the `weight_g` (out, 1, 1) and
    `weight_v` keys of reference checkpoints (for a transposed conv, g is (in, 1, 1)).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return nn.utils.weight_norm(module, dim=0)


def weight_norm_hooks(module: nn.Module) -> Iterator[tuple[nn.Module, WeightNorm]]:
    for m in module.modules():
        for hook in m._forward_pre_hooks.values():
            if isinstance(hook, WeightNorm):
                yield m, hook


class DeepCopyable(nn.Module):
    """Makes `copy.deepcopy` work despite the weight-norm hooks (needed for EMA copies).

    The hook API caches the computed `weight` as a non-leaf tensor on each conv, and deepcopy
    refuses non-leaf tensors (pytorch#103001). Copy without the caches, then recompute them.
    """

    def __deepcopy__(self, memo: dict) -> "DeepCopyable":
        hooked = list(weight_norm_hooks(self))
        cached = [m.__dict__.pop(hook.name) for m, hook in hooked]
        try:
            new = self.__class__.__new__(self.__class__)
            memo[id(self)] = new
            new.__setstate__(copy.deepcopy(self.__dict__, memo))
        finally:
            for (m, hook), weight in zip(hooked, cached, strict=True):
                setattr(m, hook.name, weight)
        for m, hook in weight_norm_hooks(new):
            hook(m, None)
        return new


@torch.no_grad()
def data_dependent_init(module: nn.Module, x: Tensor, out_std: float | None = None) -> Tensor:
    """Salimans & Kingma's data-dependent initialisation (2016, section 3) of every
    weight-normed conv of `module`: one forward pass of `x`, in which each conv, in the order the
    pass reaches it, gets the g and bias that give its output zero mean and unit std per channel
    over the batch (a transposed conv, whose g is per input channel: unit rms std over its
    channels). The last conv's output gets `out_std` instead of 1 when given. Returns the output
    of the pass, which is module(x) with the new weights."""
    hooked = [m for m, _ in weight_norm_hooks(module)]
    last = hooked[-1] if hooked else None

    def normalise(m: nn.Module, _inputs, y: Tensor) -> Tensor:
        mean, std = y.mean((0, 2)), y.std((0, 2)).clamp_min(1e-8)
        transposed = isinstance(m, nn.ConvTranspose1d)  # its g is per input channel
        if transposed:
            std = std.pow(2).mean().sqrt().expand_as(mean)
        if m is last and out_std is not None:
            std = std / out_std
        m.weight_g.div_(std[0] if transposed else std.view(-1, 1, 1))
        if m.bias is not None:
            m.bias.sub_(mean).div_(std)
            y = y - mean[:, None]
        return y / std[:, None]

    handles = [m.register_forward_hook(normalise) for m in hooked]
    try:
        return module(x)
    finally:
        for h in handles:
            h.remove()
        for m, hook in weight_norm_hooks(module):
            hook(m, None)  # the cached weight, from the new g
