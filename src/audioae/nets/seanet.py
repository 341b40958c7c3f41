"""SEANet encoder and decoder from encodec.

Défossez et al., "High Fidelity Neural Audio Compression", TMLR 2023 (arXiv:2210.13438), after
Tagliasacchi et al., "SEANet: A Multi-modal Speech Enhancement Network", Interspeech 2020.

These subclass encodec's `SEANetEncoder`/`SEANetDecoder` so that the state dict is the library's
own (`model.{i}.conv.conv.weight_g`, `model.{i}.block.1...`, `model.{i}.lstm...`), which is the
stable-audio-tools layout once the autoencoder prefixes `encoder.`/`decoder.`. They only rename
the widths to the project's contract (`in_channels`/`out_channels` for encodec's `channels`,
`latent_dim` for `dimension`), make the arguments explicit, and add `downsampling_ratio` /
`upsampling_ratio`.

`ratios` are written in the decoder's (upsampling) order for both halves, as encodec does: the
encoder downsamples by `reversed(ratios)`, so equal `ratios` make mirror images. The caller's
list is copied, never modified. stable-audio-tools instead reverses the encoder's list in place
(its §11 bug 14) so that its encoder downsamples in the order written; a stable-audio-tools
config with encoder ratios R therefore means `ratios = reversed(R)` here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from encodec.modules import SEANetDecoder as _SEANetDecoder
from encodec.modules import SEANetEncoder as _SEANetEncoder

from audioae.nets.weight_norm import DeepCopyable

_ELU = {"alpha": 1.0}


class SEANetEncoder(DeepCopyable, _SEANetEncoder):
    """(B, in_channels, T) -> (B, latent_dim, ceil(T / downsampling_ratio)).

    Downsamples by `reversed(ratios)`; `downsampling_ratio` is their product. Each block doubles
    the width, from `n_filters`; `lstm` LSTM layers follow the last block.
    """

    def __init__(
        self,
        in_channels: int = 1,
        latent_dim: int = 128,
        n_filters: int = 32,
        n_residual_layers: int = 1,
        ratios: Sequence[int] = (8, 5, 4, 2),
        activation: str = "ELU",
        activation_params: Mapping[str, Any] | None = None,
        norm: str = "weight_norm",
        norm_params: Mapping[str, Any] | None = None,
        kernel_size: int = 7,
        last_kernel_size: int = 7,
        residual_kernel_size: int = 3,
        dilation_base: int = 2,
        causal: bool = False,
        pad_mode: str = "reflect",
        true_skip: bool = False,
        compress: int = 2,
        lstm: int = 2,
    ) -> None:
        ratios = [int(r) for r in ratios]  # a copy: encodec and we never touch the caller's
        super().__init__(
            channels=in_channels,
            dimension=latent_dim,
            n_filters=n_filters,
            n_residual_layers=n_residual_layers,
            ratios=ratios,
            activation=activation,
            activation_params=dict(_ELU if activation_params is None else activation_params),
            norm=norm,
            norm_params=dict(norm_params or {}),
            kernel_size=kernel_size,
            last_kernel_size=last_kernel_size,
            residual_kernel_size=residual_kernel_size,
            dilation_base=dilation_base,
            causal=causal,
            pad_mode=pad_mode,
            true_skip=true_skip,
            compress=compress,
            lstm=lstm,
        )
        self.in_channels = in_channels
        self.latent_dim = latent_dim
        self.downsampling_ratio = math.prod(ratios)


class SEANetDecoder(DeepCopyable, _SEANetDecoder):
    """(B, latent_dim, L) -> (B, out_channels, L * upsampling_ratio).

    Upsamples by `ratios` in the order given. `final_activation` names a `torch.nn` module
    (e.g. "Tanh"), none by default. `trim_right_ratio` only matters when `causal`.
    """

    def __init__(
        self,
        latent_dim: int = 128,
        out_channels: int = 1,
        n_filters: int = 32,
        n_residual_layers: int = 1,
        ratios: Sequence[int] = (8, 5, 4, 2),
        activation: str = "ELU",
        activation_params: Mapping[str, Any] | None = None,
        final_activation: str | None = None,
        final_activation_params: Mapping[str, Any] | None = None,
        norm: str = "weight_norm",
        norm_params: Mapping[str, Any] | None = None,
        kernel_size: int = 7,
        last_kernel_size: int = 7,
        residual_kernel_size: int = 3,
        dilation_base: int = 2,
        causal: bool = False,
        pad_mode: str = "reflect",
        true_skip: bool = False,
        compress: int = 2,
        lstm: int = 2,
        trim_right_ratio: float = 1.0,
    ) -> None:
        ratios = [int(r) for r in ratios]
        super().__init__(
            channels=out_channels,
            dimension=latent_dim,
            n_filters=n_filters,
            n_residual_layers=n_residual_layers,
            ratios=ratios,
            activation=activation,
            activation_params=dict(_ELU if activation_params is None else activation_params),
            final_activation=final_activation,
            final_activation_params=(
                None if final_activation_params is None else dict(final_activation_params)
            ),
            norm=norm,
            norm_params=dict(norm_params or {}),
            kernel_size=kernel_size,
            last_kernel_size=last_kernel_size,
            residual_kernel_size=residual_kernel_size,
            dilation_base=dilation_base,
            causal=causal,
            pad_mode=pad_mode,
            true_skip=true_skip,
            compress=compress,
            lstm=lstm,
            trim_right_ratio=trim_right_ratio,
        )
        self.out_channels = out_channels
        self.latent_dim = latent_dim
        self.upsampling_ratio = math.prod(ratios)
