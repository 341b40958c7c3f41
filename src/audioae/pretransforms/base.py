"""The pretransform contract."""

from __future__ import annotations

from torch import Tensor, nn


class Pretransform(nn.Module):
    """(B, io_channels, T) -> (B, encoded_channels, T // downsampling_ratio) and back.

    Subclasses set `io_channels`, `encoded_channels`, `downsampling_ratio` and implement
    `encode`/`decode`. Unless `enable_grad`, its parameters are frozen and the autoencoder
    runs `encode` without gradients; `decode` always passes gradients through to the decoder.
    """

    io_channels: int
    encoded_channels: int
    downsampling_ratio: int

    def __init__(self, enable_grad: bool = False):
        super().__init__()
        self.enable_grad = enable_grad

    def encode(self, audio: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, x: Tensor) -> Tensor:
        raise NotImplementedError
