"""The stable-audio-tools autoencoder config schema, key by key, and where each key goes here.

Defaults are the values stable-audio-tools v0.0.19 uses when a key is absent (constructor,
factory or training-wrapper defaults; see the reference's sections 1-3, 6), so that a converted
config states every value explicitly instead of inheriting audioae's own defaults, which differ
(e.g. Oobleck `use_snake` is false there, true here).

A component (an encoder, decoder, bottleneck or discriminator `type`) is a table of `Key`s:
- `to`: the key in audioae's node for that group, or None when audioae derives the value
  (`derived` names it, and the converter checks the JSON against it);
- `default`: the stable-audio-tools value when absent (REQUIRED: it must be given);
- `kind`: the JSON type, checked with an error naming the path;
- `values`: a stable-audio-tools value -> audioae value map (any other value is unsupported);
- `reverse`: a list that audioae takes in the opposite order;
- `noop`: accepted only at its default (it changes nothing in either), never written back;
- `injected`: set by stable-audio-tools itself; giving it is an error there too.
`fixed` holds audioae keys set to reproduce what stable-audio-tools hard-codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

REQUIRED: Any = object()  # sentinel: the key has no default


@dataclass(frozen=True)
class Key:
    to: str | None = None
    default: Any = REQUIRED
    kind: str = "any"
    derived: str | None = None
    values: Mapping[Any, Any] | None = None
    reverse: bool = False
    noop: bool = False
    injected: bool = False


def k(to: str | None, default: Any = REQUIRED, kind: str = "any", **kw: Any) -> Key:
    return Key(to, default, kind, **kw)


def derived(name: str, default: Any = REQUIRED, kind: str = "int") -> Key:
    return Key(None, default, kind, derived=name)


def noop(default: Any, kind: str = "any") -> Key:
    return Key(None, default, kind, noop=True)


INJECTED = Key(None, None, "any", injected=True)


@dataclass(frozen=True)
class Component:
    group: str  # audioae config group
    choice: str  # option in conf/<group>/
    keys: dict[str, Key]
    fixed: dict[str, Any] = field(default_factory=dict)
    ratio: str | None = None  # the SAT key whose product is the down/upsampling ratio
    weights: dict[str, float] = field(default_factory=dict)  # SAT bottleneck loss -> default
    fixed_weights: dict[str, float] = field(default_factory=dict)  # audioae loss -> weight


# Values audioae derives (audioae.build), with the JSON keys they follow from.
DERIVED = {
    "in_channels": "model.in_channels (default model.io_channels; with a pretransform, its "
    "encoded channels)",
    "out_channels": "model.out_channels (default model.io_channels; with a pretransform, its "
    "encoded channels)",
    "audio_in": "model.in_channels (default model.io_channels)",
    "enc_latent": "the bottleneck's input width (model.latent_dim, doubled for a VAE)",
    "dec_latent": "the bottleneck's output width (model.latent_dim plus noise_augment_dim)",
    "latent_dim": "model.latent_dim",
}

_SEANET_COMMON = {
    "n_filters": k("n_filters", 32, "int"),
    "n_residual_layers": k("n_residual_layers", 1, "int"),
    "activation": k("activation", "ELU", "str"),
    "activation_params": k("activation_params", {"alpha": 1.0}, "mapping"),
    "norm": k("norm", "weight_norm", "str"),
    "norm_params": k("norm_params", {}, "mapping"),
    "kernel_size": k("kernel_size", 7, "int"),
    "last_kernel_size": k("last_kernel_size", 7, "int"),
    "residual_kernel_size": k("residual_kernel_size", 3, "int"),
    "dilation_base": k("dilation_base", 2, "int"),
    "causal": k("causal", False, "bool"),
    "pad_mode": k("pad_mode", "reflect", "str"),
    "true_skip": k("true_skip", False, "bool"),
    "compress": k("compress", 2, "int"),
    "lstm": k("lstm", 2, "int"),
}

ENCODERS = {
    "oobleck": Component(
        "encoder",
        "oobleck",
        {
            "in_channels": derived("in_channels", 2),
            "channels": k("channels", 128, "int"),
            "latent_dim": derived("enc_latent", 32),
            "c_mults": k("c_mults", [1, 2, 4, 8], "ints"),
            "strides": k("strides", [2, 4, 8, 8], "ints"),
            "use_snake": k("use_snake", False, "bool"),
            "antialias_activation": k("antialias_activation", False, "bool"),
        },
        ratio="strides",
    ),
    "dac": Component(
        "encoder",
        "dac",
        {
            "in_channels": derived("in_channels", 1),
            # Without latent_dim stable-audio-tools skips the 1x1 output projection, which
            # audioae's DACEncoder always has: required here.
            "latent_dim": derived("enc_latent"),
            "d_model": k("d_model", REQUIRED, "int"),
            "strides": k("strides", REQUIRED, "ints"),
        },
        ratio="strides",
    ),
    # stable-audio-tools makes the SEANet encoder downsample in the order written; audioae's
    # takes ratios in decoder order (it downsamples by them reversed): hence `reverse`.
    "seanet": Component(
        "encoder",
        "seanet",
        {
            "channels": derived("in_channels", 1),
            "dimension": derived("enc_latent", 128),
            "ratios": k("ratios", [2, 2, 2, 2, 2], "ints", reverse=True),
            **_SEANET_COMMON,
        },
        ratio="ratios",
    ),
}

DECODERS = {
    "oobleck": Component(
        "decoder",
        "oobleck",
        {
            "out_channels": derived("out_channels", 2),
            "channels": k("channels", 128, "int"),
            "latent_dim": derived("dec_latent", 32),
            "c_mults": k("c_mults", [1, 2, 4, 8], "ints"),
            "strides": k("strides", [2, 4, 8, 8], "ints"),
            "use_snake": k("use_snake", False, "bool"),
            "antialias_activation": k("antialias_activation", False, "bool"),
            "use_nearest_upsample": k("use_nearest_upsample", False, "bool"),
            "final_tanh": k("final_tanh", True, "bool"),
        },
        ratio="strides",
    ),
    "dac": Component(
        "decoder",
        "dac",
        {
            "latent_dim": derived("dec_latent"),
            "out_channels": derived("out_channels", 1),
            "channels": k("channels", REQUIRED, "int"),
            "rates": k("rates", REQUIRED, "ints"),
        },
        ratio="rates",
    ),
    "seanet": Component(
        "decoder",
        "seanet",
        {
            "channels": derived("out_channels", 1),
            "dimension": derived("dec_latent", 128),
            "ratios": k("ratios", [8, 5, 4, 2], "ints"),
            **_SEANET_COMMON,
            "final_activation": k("final_activation", None, "str?"),
            "final_activation_params": k("final_activation_params", None, "mapping?"),
            "trim_right_ratio": k("trim_right_ratio", 1.0, "number"),
        },
        ratio="ratios",
    ),
}

# Factory defaults merged under an `rvq`/`rvq_vae` config, then ResidualVQ's (1.14.41).
_RVQ = {
    "dim": derived("latent_dim", 128),
    "codebook_size": k("codebook_size", 1024, "int"),
    "num_quantizers": k("num_quantizers", 8, "int"),
    "codebook_dim": k("codebook_dim", None, "int?"),
    "decay": k("decay", 0.99, "number"),
    "kmeans_init": k("kmeans_init", True, "bool"),
    "kmeans_iters": k("kmeans_iters", 50, "int"),
    "threshold_ema_dead_code": k("threshold_ema_dead_code", 2, "number"),
    "commitment_weight": k("commitment_weight", 1.0, "number"),
    "quantize_dropout": k("quantize_dropout", False, "bool"),
    "sync_codebook": k("sync_codebook", None, "bool?"),
    "heads": noop(1),
    "shared_codebook": noop(False),
    "use_cosine_sim": noop(False),
    "orthogonal_reg_weight": noop(0.0),
}
# 1.14.41 predates the rotation trick: straight-through estimator.
_RVQ_FIXED = {"rotation_trick": False}
_DAC_RVQ = {
    "input_dim": derived("latent_dim", 512),
    "n_codebooks": k("n_codebooks", REQUIRED, "int"),
    "codebook_size": k("codebook_size", 1024, "int"),
    "codebook_dim": k("codebook_dim", 8, "any"),
    "quantizer_dropout": k("quantizer_dropout", 0.0, "number"),
    "quantize_on_decode": k("quantize_on_decode", False, "bool"),
}
_DAC_RVQ_WEIGHTS = {"vq/codebook_loss": 1.0, "vq/commitment_loss": 0.25}

BOTTLENECKS = {
    # stable-audio-tools starts the posterior std at the encoder's own init (about 0.69)
    "vae": Component("bottleneck", "vae", {}, fixed={"init_std": None}, weights={"kl": 1e-6}),
    "tanh": Component("bottleneck", "tanh", {"scale": k("scale", 1.0, "number")}),
    "l2_norm": Component("bottleneck", "l2_norm", {}),
    "wasserstein": Component(
        "bottleneck",
        "wasserstein",
        {
            "noise_augment_dim": k("noise_augment_dim", 0, "int"),
            "bypass_mmd": k("bypass_mmd", False, "bool"),
            "use_tanh": k("use_tanh", False, "bool"),
            "tanh_scale": k("tanh_scale", 5.0, "number"),
        },
        weights={"mmd": 100.0},
    ),
    "rvq": Component(
        "bottleneck",
        "rvq",
        _RVQ,
        fixed=_RVQ_FIXED,
        fixed_weights={"vq/commitment_loss": 1.0},
    ),
    "rvq_vae": Component(
        "bottleneck",
        "rvq_vae",
        _RVQ,
        fixed={**_RVQ_FIXED, "init_std": None},
        weights={"kl": 1e-6},
        fixed_weights={"vq/commitment_loss": 1.0},
    ),
    "dac_rvq": Component(
        "bottleneck",
        "dac_rvq",
        {**_DAC_RVQ, "noise_augment_dim": k("noise_augment_dim", 0, "int")},
        fixed_weights=_DAC_RVQ_WEIGHTS,
    ),
    "dac_rvq_vae": Component(
        "bottleneck",
        "dac_rvq_vae",
        _DAC_RVQ,
        fixed={"noise_augment_dim": 0, "init_std": None},
        weights={"kl": 1e-6},
        fixed_weights=_DAC_RVQ_WEIGHTS,
    ),
    # vector-quantize-pytorch 1.14.41's FSQ: no symmetric quantizer, no noise dropout.
    "fsq": Component(
        "bottleneck",
        "fsq",
        {
            "levels": k("levels", REQUIRED, "ints"),
            "dim": derived("latent_dim", None, "int?"),  # None: len(levels) * num_codebooks
            "num_codebooks": k("num_codebooks", 1, "int"),
            "noise_augment_dim": k("noise_augment_dim", 0, "int"),
            "projection_has_bias": k("projection_has_bias", True, "bool"),
            "keep_num_codebooks_dim": noop(None),
            "scale": noop(None),
            "channel_first": noop(False),
            "return_indices": noop(True),
        },
        fixed={"preserve_symmetry": False, "noise_dropout": 0.0},
    ),
}

DAC_BANDS = [[0.0, 0.1], [0.1, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1.0]]

DISCRIMINATORS = {
    # v0.0.19's vendored MS-STFT discriminator: stride (1, 1) and a weight-normed first conv.
    "encodec": Component(
        "discriminator",
        "encodec",
        {
            "filters": k("filters", REQUIRED, "int"),
            "n_ffts": k("n_ffts", [1024, 2048, 512], "ints"),
            "hop_lengths": k("hop_lengths", [256, 512, 128], "ints"),
            "win_lengths": k("win_lengths", [1024, 2048, 512], "ints"),
            "max_filters": k("max_filters", 1024, "int"),
            "filters_scale": k("filters_scale", 1, "int"),
            "kernel_size": k("kernel_size", [3, 9], "ints"),
            "dilations": k("dilations", [1, 2, 4], "ints"),
            "stride": k("stride", [1, 1], "ints"),
            "normalized": k("normalized", True, "bool"),
            "activation": k("activation", "LeakyReLU", "str"),
            "activation_params": k("activation_params", {"negative_slope": 0.2}, "mapping"),
            # "rpgan" is broken there (an undefined function); hinge is the only working loss
            "loss_type": k("loss", "hinge", "str", values={"hinge": "hinge"}),
            "normalize_losses": noop(False),
            "spec_scale_pow": noop(0.0),
            "out_channels": noop(1),
            "in_channels": INJECTED,
        },
        fixed={"weight_norm_first": True},
    ),
    # Its network is fixed there: 3 scales, periods 2..11, widths 32..256, kernel 15, stride 4.
    # in_channels is not injected there, so stereo configs must set it.
    "oobleck": Component(
        "discriminator",
        "oobleck",
        {"in_channels": derived("out_channels", 1)},
        fixed={
            "n_scales": 3,
            "periods": [2, 3, 5, 7, 11],
            "capacity": 32,
            "n_layers": 4,
            "kernel_size": 15,
            "stride": 4,
            "loss": "hinge",
        },
    ),
    "dac": Component(
        "discriminator",
        "dac",
        {
            "use_hinge": k("loss", False, "bool", values={False: "lsgan", True: "hinge"}),
            "rates": k("rates", [], "ints"),
            "periods": k("periods", [2, 3, 5, 7, 11], "ints"),
            "fft_sizes": k("fft_sizes", [2048, 1024, 512], "ints"),
            "bands": k("bands", DAC_BANDS, "pairs"),
            "channels": INJECTED,
            "sample_rate": INJECTED,
        },
    ),
}

# model.pretransform (its `enable_grad` sits beside `type`). The `autoencoder` type is not
# converted: a trained inner model is a run or a checkpoint here (pretransform=autoencoder).
PRETRANSFORMS = {
    "wavelet": Component(
        "pretransform",
        "wavelet",
        {
            "channels": derived("audio_in"),
            "levels": k("levels", REQUIRED, "int"),
            "wavelet": k("wavelet", REQUIRED, "str"),
        },
    ),
    "pqmf": Component(
        "pretransform",
        "pqmf",
        {
            "attenuation": k("attenuation", 100, "number"),
            "num_bands": k("num_bands", 16, "int"),
            "channels": derived("audio_in", 1),
        },
    ),
}

# loss_configs.spectral.config: its modified auraloss MultiResolutionSTFTLoss / STFTLoss.
SPECTRAL = Component(
    "loss.terms.spectral",
    "spectral",
    {
        "fft_sizes": k("fft_sizes", [1024, 2048, 512], "ints"),
        "hop_sizes": k("hop_sizes", [120, 240, 50], "ints"),
        "win_lengths": k("win_lengths", [600, 1200, 240], "ints"),
        "window": k("window", "hann_window", "str"),
        "w_sc": k("w_sc", 1.0, "number"),
        "w_log_mag": k("w_log_mag", 1.0, "number"),
        "w_lin_mag": k("w_lin_mag", 0.0, "number"),
        "w_phs": k("w_phs", 0.0, "number"),
        "scale": k("scale", None, "str?"),
        "n_bins": k("n_bins", None, "int?"),
        "perceptual_weighting": k("perceptual_weighting", False, "bool"),
        "scale_invariance": k("scale_invariance", False, "bool"),
        "eps": k("eps", 1e-8, "number"),
        "reduction": noop("mean"),
        "mag_distance": noop("L1"),
        "output": noop("loss"),
        "w_sum": noop(1.0),
        "w_diff": noop(1.0),
        "sample_rate": INJECTED,
    },
    # 0.0.20's own STFT loss (losses/sat_stft.py), which replaced the auraloss copy
    fixed={"form": "sat"},
)

# training.loss_configs when absent (training/autoencoders.py).
_SCALES = [2048, 1024, 512, 256, 128, 64, 32]
DEFAULT_LOSS_CONFIGS = {
    "discriminator": {
        "type": "encodec",
        "config": {
            "n_ffts": _SCALES,
            "hop_lengths": [s // 4 for s in _SCALES],
            "win_lengths": _SCALES,
            "filters": 32,
        },
        "weights": {"adversarial": 0.1, "feature_matching": 5.0},
    },
    "spectral": {
        "type": "mrstft",
        "config": {
            "fft_sizes": _SCALES,
            "hop_sizes": [s // 4 for s in _SCALES],
            "win_lengths": _SCALES,
            "perceptual_weighting": True,
        },
        "weights": {"mrstft": 1.0},
    },
    "time": {"type": "l1", "config": {}, "weights": {"l1": 0.0}},
}

# The optimizers when training.optimizer_configs is absent: AdamW, betas (0.8, 0.99), and
# torch's default weight decay (0.01, which stable-audio-tools never sets).
DEFAULT_BETAS = [0.8, 0.99]

# Initialisation, EMA and GAN schedule that stable-audio-tools 0.0.20 hard-codes (PyTorch's own
# init; its EMA: beta 0.999, power 3/4, updated after every 10th batch, i.e. every 5th generator
# step, copying the weights for its first 2000 updates; G on even, D on odd steps, D trains
# during warmup; no gradient clipping).
FIXED_TRAINING = {
    "trainer.data_init": None,
    "trainer.ema.decay": 0.999,
    "trainer.ema.power": 0.75,
    "trainer.ema.every": 5,
    "trainer.ema.start": 2000,
    "trainer.schedule.disc_during_warmup": True,
    "trainer.schedule.gen_updates": 1,
    "trainer.schedule.disc_updates": 1,
    "trainer.schedule.joint": False,
    "optim.generator.clip_grad_norm": 0.0,
    "optim.discriminator.clip_grad_norm": 0.0,
}

# stable-audio-tools' loaders always flip the polarity with p 0.5 (PhaseFlipper; it cannot be
# turned off) and, for audio_dir data, apply nothing else: conf/augment/sat.yaml, which every
# converted training config selects. Its webdataset loader's volume_norm is sat_dataset.py's.
AUGMENT_CHOICE = "sat"
AUGMENT = {  # augment.KEY
    "polarity_p": 0.5,
    "gain_db": None,
    "loudness_lufs": None,
    "mono_p": 0.0,
    "channel_swap_p": 0.0,
    "silence_p": 1e-3,  # 0.0.20's training step zeroes a crop with this probability
}

# Keys of audioae nodes that change memory or speed only: never reported as lost on the way back.
PERFORMANCE_ONLY = {"checkpointing", "channels_last"}

# Features the converter refuses (or, with --lenient, drops with a warning), by JSON path.
UNSUPPORTED_TYPES = {
    "encoder": {"local_attn", "taae"},
    "decoder": {"local_attn", "taae"},
    "bottleneck": {"dithered_fsq"},
    "discriminator": {"big_vgan"},
}

SCHEDULER_TARGETS = {"InverseLR": "audioae.train.schedulers.InverseLR"}
