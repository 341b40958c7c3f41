"""Weight normalisation (Salimans & Kingma, 2016) with stable-audio-tools' parameter names.

The deprecated hook API (`torch.nn.utils.weight_norm`) is used on purpose: it names the
parameters `weight_g` and `weight_v`, as in reference checkpoints, where the newer
parametrisation API would name them `parametrizations.weight.original0/1`.
"""

import copy
import warnings
from collections.abc import Iterator

from torch import nn
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
