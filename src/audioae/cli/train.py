"""`audioae-train [overrides]`: train an autoencoder; `-m` sweeps (Hydra multirun).

audioae-train                                   # small Oobleck VAE on embedded data
audioae-train encoder=oobleck bottleneck=vae loss=mrstft
audioae-train experiment=smoke
audioae-train -m bottleneck=vae,tanh trainer.max_steps=2
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from audioae.config import config_dir
from audioae.errors import AudioAEError

log = logging.getLogger("audioae")


@hydra.main(version_base=None, config_path=str(config_dir()), config_name="train")
def run(cfg: DictConfig) -> None:
    from audioae.train.loop import train  # heavy imports after Hydra has parsed the CLI

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        ckpt = train(cfg, run_dir)
    except AudioAEError as e:
        sys.exit(f"audioae-train: {e}")
    print(f"run directory: {run_dir}")
    print(f"  config:      {run_dir / 'config.yaml'}")
    print(f"  tensorboard: {run_dir / 'tb'}   (tensorboard --logdir {run_dir / 'tb'})")
    print(f"  checkpoint:  {ckpt}")


def main() -> None:
    run()


if __name__ == "__main__":
    main()
