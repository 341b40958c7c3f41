"""Build the model from a composed config, deriving the widths that interpolation cannot.

`hydra.utils.instantiate` does all dispatch; this module only computes relations between
groups (stated once, derived here) and checks contradictions, naming the keys involved:
- the encoder's output width is the bottleneck's input width (a VAE needs 2 * latent_dim);
- the decoder's input width is the bottleneck's output width (latent_dim + noise channels);
- the encoder's input and the decoder's output channels are `in_channels`/`out_channels`,
  or the pretransform's encoded channels when there is one;
- the downsampling ratio is the product of the encoder strides (times the pretransform's), and
  must match the decoder's.
"""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from audioae.autoencoder import AudioAutoencoder
from audioae.errors import AudioAEError, ConfigError

FREEZABLE = ("encoder", "decoder", "bottleneck")


def build(node: DictConfig, key: str, **derived):
    """instantiate(node, **derived), with errors reported as one line naming `key`."""
    for name, value in derived.items():
        given = node.get(name) if name in node else None
        if given is not None and given != value:
            raise ConfigError(
                f"{key}.{name}={given} contradicts the value derived from the other groups "
                f"({value}); remove {key}.{name} or change the setting it follows from"
            )
    try:
        return instantiate(node, **derived)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, AudioAEError):
            raise cause from None
        reason = str(cause or e).strip().splitlines()[-1] if (cause or e) else str(e)
        raise ConfigError(f"{key}: {reason}") from None


def derived_widths(cfg: DictConfig, bottleneck, pretransform=None) -> dict[str, int]:
    """The widths between groups that the config does not state, from the built bottleneck
    and pretransform: the encoder's input and the decoder's output channels (`in_channels`,
    `out_channels`: the audio's, or the pretransform's encoded channels), the encoder's output
    (`enc_latent`: the bottleneck's input, 2 * latent_dim for a VAE) and the decoder's input
    (`dec_latent`: the bottleneck's output, latent_dim plus noise channels)."""
    return {
        "in_channels": pretransform.encoded_channels if pretransform else cfg.in_channels,
        "out_channels": pretransform.encoded_channels if pretransform else cfg.out_channels,
        "enc_latent": bottleneck.in_channels,
        "dec_latent": bottleneck.out_channels,
    }


def model_widths(cfg: DictConfig, pretransform=None) -> dict[str, int]:
    """`derived_widths` of a config (building its bottleneck, and its pretransform unless
    given), with the stated `audio_in` (in_channels) and `latent_dim` beside them: what the
    converters compare."""
    bottleneck = build(cfg.bottleneck, "bottleneck")
    pre = pretransform
    if pre is None and cfg.get("pretransform"):
        pre = build(cfg.pretransform, "pretransform")
    widths = derived_widths(cfg, bottleneck, pre)
    return {**widths, "audio_in": cfg.in_channels, "latent_dim": cfg.latent_dim}


def build_autoencoder(cfg: DictConfig) -> AudioAutoencoder:
    """The AudioAutoencoder of a composed train config (groups encoder, bottleneck, decoder)."""
    pretransform = build(cfg.pretransform, "pretransform") if cfg.get("pretransform") else None
    pre_ratio = 1
    if pretransform is not None:
        # it encodes the input and decodes the output: both have its channel count
        if not pretransform.io_channels == cfg.in_channels == cfg.out_channels:
            raise ConfigError(
                f"pretransform works on {pretransform.io_channels} channels in and out but "
                f"in_channels={cfg.in_channels}, out_channels={cfg.out_channels}"
            )
        pre_ratio = pretransform.downsampling_ratio
        pretransform.requires_grad_(pretransform.enable_grad)
    bottleneck = build(cfg.bottleneck, "bottleneck")
    w = derived_widths(cfg, bottleneck, pretransform)
    encoder = build(
        cfg.encoder, "encoder", latent_dim=w["enc_latent"], in_channels=w["in_channels"]
    )
    bottleneck.init_encoder_output(encoder)
    decoder = build(
        cfg.decoder, "decoder", latent_dim=w["dec_latent"], out_channels=w["out_channels"]
    )

    ratio = int(encoder.downsampling_ratio)
    up = getattr(decoder, "upsampling_ratio", ratio)
    if up != ratio:
        raise ConfigError(
            f"decoder strides upsample by {up} but encoder strides downsample by {ratio}; "
            "make encoder.strides and decoder.strides multiply to the same ratio"
        )
    ratio *= pre_ratio
    if cfg.get("downsampling_ratio") not in (None, ratio):
        raise ConfigError(
            f"downsampling_ratio={cfg.downsampling_ratio} contradicts encoder.strides "
            f"(total ratio {ratio}); drop downsampling_ratio, it is derived"
        )
    if cfg.sample_size % ratio:
        raise ConfigError(
            f"sample_size={cfg.sample_size} is not a multiple of the downsampling ratio {ratio} "
            "(product of encoder.strides)"
        )
    model = AudioAutoencoder(
        encoder=encoder,
        decoder=decoder,
        bottleneck=bottleneck,
        sample_rate=cfg.sample_rate,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        downsampling_ratio=ratio,
        pretransform=pretransform,
        soft_clip=cfg.get("soft_clip", False),
    )
    # `freeze`: components that never train (stable-audio-tools' `requires_grad: false`).
    # Their parameters get no gradient, so the optimizer leaves them as loaded, and they stay in
    # inference mode (AudioAutoencoder.freeze).
    for name in cfg.get("freeze") or []:
        if name not in FREEZABLE:
            raise ConfigError(
                f"freeze: unknown component {name!r}; choose from {', '.join(FREEZABLE)}"
            )
        model.freeze(name)
    return model
