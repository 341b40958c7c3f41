"""Types of the top-level and trainer keys, checked by Hydra when it composes the config.

Groups that build objects (encoder, bottleneck, loss, ...) are typed `Any` here: their
constructor signatures are their schemas and `instantiate` checks them. Everything else gets a
type, so `trainer.max_steps=abc` or a misspelt top-level key fails at start-up with a message
naming the key. Defaults live in the YAML files, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


@dataclass
class TrainerSchema:
    max_steps: int = MISSING
    batch_size: int = MISSING
    grad_accum: int = MISSING
    num_workers: int = MISSING
    seed: int = MISSING
    precision: str = MISSING
    log_every: int = MISSING
    checkpoint_every: int = MISSING
    demo_every: int = MISSING
    num_demos: int = MISSING
    max_nonfinite: int = MISSING
    use_ema: bool = MISSING
    compile: bool = False
    data_init: float | None = None
    ema: dict[str, float] = MISSING
    schedule: Any = MISSING
    val_every: int = MISSING
    val_batches: int = MISSING
    val_path: str | None = None


@dataclass
class TrainSchema:
    encoder: Any = MISSING
    decoder: Any = MISSING
    bottleneck: Any = MISSING
    loss: Any = MISSING
    discriminator: Any = MISSING
    data: Any = MISSING
    optim: Any = MISSING
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    pretransform: Any = None
    augment: Any = None  # conf/augment/: training crops only (audioae/data/augment.py)
    sample_rate: int = MISSING
    sample_size: int = MISSING
    io_channels: int = MISSING
    in_channels: int = MISSING
    out_channels: int = MISSING
    latent_dim: int = MISSING
    downsampling_ratio: int | None = None
    soft_clip: bool = False
    freeze: list[str] = field(default_factory=list)
    resume: str | None = None
    init_from: str | None = None
    init_from_strict: bool = True
    init_from_ema: bool = True
    init_discriminator: bool = False


def register() -> None:
    """The schema and the resolver that conf/ names: `${max:a,b}` (the data's channels are
    max(in_channels, out_channels), audioae.autoencoder)."""
    ConfigStore.instance().store(name="train_schema", node=TrainSchema)
    if not OmegaConf.has_resolver("max"):
        OmegaConf.register_new_resolver("max", lambda *values: max(values))


def check(cfg) -> None:
    """Re-check a composed config against the schema: Hydra lets `+key=value` add keys that
    the schema does not know; here they are an error naming the key."""
    from omegaconf.errors import OmegaConfBaseException

    from audioae.errors import ConfigError

    try:
        plain = OmegaConf.to_container(cfg, resolve=False)  # drops the types Hydra attached
        plain.pop("hydra", None)
        OmegaConf.merge(OmegaConf.structured(TrainSchema), plain)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "config"
        reason = str(e).splitlines()[0]
        raise ConfigError(f"{key}: {reason}") from None
    check_values(cfg)


POSITIVE = (
    "trainer.max_steps",
    "trainer.batch_size",
    "trainer.grad_accum",
    "trainer.checkpoint_every",
    "trainer.max_nonfinite",
    "sample_rate",
    "sample_size",
    "io_channels",
    "in_channels",
    "out_channels",
    "latent_dim",
)
HINTS = {"trainer.max_nonfinite": " (consecutive non-finite steps that stop the run; 1: the first)"}
NON_NEGATIVE = ("trainer.log_every", "trainer.demo_every", "trainer.val_every")  # 0 = never
# each needs its count when its interval is on (an interval of 0 turns it off)
COUNTS = (("trainer.demo_every", "trainer.num_demos"), ("trainer.val_every", "trainer.val_batches"))
LEARNING_RATES = ("optim.generator.optimizer.lr", "optim.discriminator.optimizer.lr")
PRECISIONS = ("no", "fp16", "bf16")


def check_values(cfg) -> None:
    """Values that type-check but cannot train: one error naming the key."""
    from omegaconf import OmegaConf

    from audioae.errors import ConfigError

    if str(OmegaConf.select(cfg, "data._target_", default="")).endswith(".PreEncoded"):
        raise ConfigError(
            "data=pre_encoded holds latents, for models trained on latents; audioae-train "
            "trains an autoencoder on audio (data=audio_dir data.path=...)"
        )
    for key in sorted(OmegaConf.missing_keys(cfg)):
        group = key.split(".")[0]
        choice = _choice(group)
        raise ConfigError(f"{key} is required" + (f" for {group}={choice}" if choice else ""))
    for key in POSITIVE:
        if (value := OmegaConf.select(cfg, key)) is not None and value <= 0:
            raise ConfigError(f"{key}={value}: must be a positive integer{HINTS.get(key, '')}")
    for key in NON_NEGATIVE:
        if (value := OmegaConf.select(cfg, key)) is not None and value < 0:
            raise ConfigError(f"{key}={value}: must be >= 0 (0 = never)")
    for every, count in COUNTS:
        on, n = OmegaConf.select(cfg, every), OmegaConf.select(cfg, count)
        if n is not None and (n < 0 or (on and n == 0)):
            raise ConfigError(
                f"{count}={n} with {every}={on}: {count} must be >= 1 (or {every}=0 turns them off)"
            )
    for key in LEARNING_RATES:
        value = OmegaConf.select(cfg, key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is not None and (not number or value < 0):
            raise ConfigError(f"{key}={value}: a learning rate must be a number >= 0")
    if (precision := OmegaConf.select(cfg, "trainer.precision")) not in PRECISIONS:
        raise ConfigError(f"trainer.precision={precision}: must be one of {', '.join(PRECISIONS)}")


def _choice(group: str) -> str | None:
    """The config group option Hydra chose for `group` (data=audio_dir), if known."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return HydraConfig.get().runtime.choices.get(group)
    except ValueError:  # not composed by Hydra's app (a test's compose)
        return None
