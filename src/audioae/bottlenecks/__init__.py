"""Bottlenecks: the module between encoder and decoder that shapes the latent space."""

from audioae.bottlenecks.base import Bottleneck, BottleneckResult

__all__ = ["Bottleneck", "BottleneckResult"]
