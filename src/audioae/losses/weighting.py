"""One flat, namespaced loss dict, weighted by config keys that match loss names exactly.

Loss names are namespaced with "/" (`spec/mrstft`, `adv/gen`, `vq/commitment_loss`). In configs
the namespaces are nested keys, since Hydra overrides cannot contain "/":
`loss.weights.spec.mrstft=0.5` sets the weight of `spec/mrstft`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from audioae.errors import ConfigError


def flatten(weights: Mapping, prefix: str = "") -> dict[str, float]:
    """{"spec": {"mrstft": 1.0}, "kl": 1e-4} -> {"spec/mrstft": 1.0, "kl": 1e-4}."""
    flat: dict[str, float] = {}
    for key, value in weights.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}/"))
        else:
            flat[name] = float(value)
    return flat


def unflatten(weights: Mapping[str, float]) -> dict:
    """The inverse of `flatten`: {"spec/mrstft": 1.0} -> {"spec": {"mrstft": 1.0}} (the config
    spelling)."""
    tree: dict = {}
    for name, value in weights.items():
        *heads, last = name.split("/")
        node = tree
        for head in heads:
            node = node.setdefault(head, {})
        node[last] = value
    return tree


def check_weights(weights: Mapping[str, float], names: Iterable[str], key: str) -> None:
    """Every weight must name a loss that the run computes, or be 0 (the weight of a term that
    a config removed: `loss.terms.mel: null`)."""
    names = set(names)
    unknown = sorted(k for k in set(weights) - names if weights[k] != 0)
    if unknown:
        raise ConfigError(
            f"{key}: no loss named {', '.join(unknown)}; the losses of this run are "
            f"{', '.join(sorted(names))}"
        )


def weighted_sum(losses: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """sum_k weights[k] * losses[k] over the weighted losses present (weight 0 = log only)."""
    terms = [w * losses[k] for k, w in weights.items() if w != 0 and k in losses]
    if not terms:
        return torch.zeros((), device=next(iter(losses.values())).device)
    return torch.stack(terms).sum()
