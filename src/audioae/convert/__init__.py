"""Converters between audioae's Hydra configs and other frameworks' configs.

`audioae.convert.sat`: stable-audio-tools autoencoder model configs (JSON), both ways.
"""

from audioae.convert.sat import Conversion, convert, preset, sat_config, sat_to_overrides
from audioae.convert.sat_back import config_to_sat
from audioae.convert.sat_read import SATConversionWarning, load_json

__all__ = [
    "Conversion",
    "SATConversionWarning",
    "config_to_sat",
    "convert",
    "load_json",
    "preset",
    "sat_config",
    "sat_to_overrides",
]
