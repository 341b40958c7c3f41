"""Multi-scale + multi-period waveform discriminator, stable-audio-tools' `oobleck` option.

Both halves share one conv stack design (from RAVE, Caillon & Esling, 2021,
arXiv:2111.05011): weight-normed convs of kernel 15, stride 4, channels
[in, 32, 64, 128, 256] with SiLU, then a 1x1 conv to one logit channel.
- Multi-scale (MelGAN, Kumar et al., NeurIPS 2019): the stack in Conv1d on the waveform at
  n_scales rates, avg_pool1d(2) between scales.
- Multi-period (HiFi-GAN, Kong et al., NeurIPS 2020): the stack in Conv2d on the waveform
  zero-padded to a multiple of p and folded to (B, C, T/p, p), one stack per period.

Choices that differ from stable-audio-tools (documented, not bugs reproduced):
- Period convs use a (15, 1) kernel, stride (4, 1), padding (7, 0), as in HiFi-GAN, so each of
  the p phases is judged separately. The reference passes an integer kernel to Conv2d, i.e.
  15 x 15 with stride 4 on both axes: it mixes phases and shrinks the period axis (width 2..11,
  padded by 7 each side) to 1-3 columns, defeating the period fold.
- One (logits, features) pair per sub-discriminator (n_scales + len(periods)), and the
  objective is averaged over them like the other options. The reference takes one score per
  item (logits averaged over positions), sums the scores of all sub-discriminators, and applies
  the hinge to the sum.
- Feature maps are the post-activation outputs of the weight-normed convs (the logits are not
  a feature), and feature matching averages over layers and sub-discriminators. The reference
  sums mean |real - fake| over all pre-activation maps and logits (40 terms by default), so its
  feature-matching term is about 40x ours at the same weight.
- `in_channels` is injected (the reference's is fixed at 1 unless set by hand, §11.17).
Keys: `scales.{k}.convs.{j}.{weight_g,weight_v,bias}`, `scales.{k}.conv_post.*`, `periods.{k}...`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch.nn.functional as F
from torch import Tensor, nn

from audioae.discriminators.base import (
    DiscOutput,
    Discriminator,
    channels_last_convs,
    maybe_checkpoint,
)
from audioae.nets.weight_norm import wn


class ConvStack(nn.Module):
    """n_layers weight-normed convs (stride `stride` on the first spatial axis) with SiLU,
    then a plain 1x1 conv to one channel. `forward(x) -> (logits, [n_layers feature maps])`.

    dims: 1 for (B, C, T) with Conv1d, 2 for (B, C, T/p, p) with (kernel, 1) Conv2d.
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        capacity: int,
        n_layers: int,
        kernel_size: int,
        stride: int,
    ):
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        k, s, p = (
            (kernel_size, stride, kernel_size // 2)
            if dims == 1
            else ((kernel_size, 1), (stride, 1), (kernel_size // 2, 0))
        )
        widths = [in_channels] + [capacity * 2**i for i in range(n_layers)]
        self.convs = nn.ModuleList(
            wn(conv(c_in, c_out, k, stride=s, padding=p)) for c_in, c_out in pairwise(widths)
        )
        self.act = nn.SiLU()
        self.conv_post = conv(widths[-1], 1, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        features = []
        for conv in self.convs:
            x = self.act(conv(x))
            features.append(x)
        return self.conv_post(x), features


class OobleckDiscriminator(Discriminator):
    """(B, in_channels, T) -> n_scales + len(periods) pairs of (logits, 4 feature maps).

    Scale k sees the signal average-pooled by 2**k: logits (B, 1, T / 2**k / stride**n_layers),
    roughly. Period p sees (B, C, ceil(T/p), p): logits (B, 1, ceil(T/p) / stride**n_layers, p).
    checkpointing: recompute each sub-discriminator in the backward pass.
    channels_last: compute the period discriminators' 2D convs in NHWC layout (same values).
    """

    def __init__(
        self,
        in_channels: int,
        n_scales: int = 3,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        capacity: int = 32,
        n_layers: int = 4,
        kernel_size: int = 15,
        stride: int = 4,
        loss: str = "hinge",
        checkpointing: bool = False,
        channels_last: bool = True,
    ):
        super().__init__(loss)
        self.checkpointing = checkpointing
        self.period_sizes = [int(p) for p in periods]
        args = (in_channels, capacity, n_layers, kernel_size, stride)
        self.scales = nn.ModuleList(ConvStack(1, *args) for _ in range(n_scales))
        self.periods = nn.ModuleList(ConvStack(2, *args) for _ in self.period_sizes)
        if channels_last:
            channels_last_convs(self)

    def forward(self, x: Tensor) -> DiscOutput:
        outputs = []
        y = x
        for k, stack in enumerate(self.scales):
            if k:
                y = F.avg_pool1d(y, 2)
            outputs.append(maybe_checkpoint(stack, y, self.checkpointing))
        for p, stack in zip(self.period_sizes, self.periods, strict=True):
            outputs.append(maybe_checkpoint(stack, fold(x, p), self.checkpointing))
        return outputs


def fold(x: Tensor, period: int) -> Tensor:
    """(B, C, T) -> (B, C, ceil(T / period), period), zero-padding the end as the reference."""
    pad = -x.shape[-1] % period
    x = F.pad(x, (0, pad))
    return x.reshape(*x.shape[:2], -1, period)
