"""Collectives of a distributed run: checks and decisions all processes must take together."""

from __future__ import annotations

import hashlib
import logging

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch import nn

from audioae.errors import AudioAEError
from audioae.train.signals import StopRequest

log = logging.getLogger(__name__)


def check_replicas(acc: Accelerator, modules: list[nn.Module], step: int) -> None:
    """In a distributed run, fail loudly if the processes' weights (or buffers, such as EMA
    codebooks) have drifted apart, which data-parallel training must never let happen.

    Every parameter and buffer is compared byte for byte (a digest of each; sums would let
    different weights pass)."""
    if acc.num_processes == 1:
        return
    digests = tensor_digests(modules)
    gathered = gather_object([digests])  # one dict per process
    drifted = [name for name in digests if any(d.get(name) != digests[name] for d in gathered)]
    if drifted:
        raise AudioAEError(
            f"step {step}: weights differ across the {acc.num_processes} processes in "
            f"{len(drifted)} tensors ({', '.join(drifted[:3])}"
            f"{', ...' if len(drifted) > 3 else ''}); a module updates state per process"
        )
    log.info("step %d: weights identical across %d processes", step, acc.num_processes)


def tensor_digests(modules: list[nn.Module]) -> dict[str, str]:
    """A digest of the bytes of every parameter and buffer of `modules`, named `I.NAME` (I: the
    module's position in the list)."""
    digests = {}
    for i, module in enumerate(modules):
        named = (*module.named_parameters(), *module.named_buffers())
        for name, tensor in named:
            data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
            digest = hashlib.blake2b(data.numpy().tobytes(), digest_size=16)
            digests[f"{i}.{name}"] = f"{tensor.dtype}{tuple(tensor.shape)}:{digest.hexdigest()}"
    return digests


def stop_requested(stop: StopRequest, acc: Accelerator) -> bool:
    """Whether any process received SIGTERM, SIGINT or submitit's SIGUSR2 (all processes must
    agree, since saving a checkpoint is collective)."""
    flag = torch.tensor(float(stop.signal is not None), device=acc.device)
    if acc.num_processes > 1:
        flag = acc.reduce(flag, reduction="sum")
    return bool(flag.item())
