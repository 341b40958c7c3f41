"""Data: endless, deterministic datasets indexed by a draw number, and their sampler.

Every dataset maps a draw number n (0, 1, 2, ...) to a float32 tensor (channels, sample_size) in
[-1, 1] that depends only on (seed, n). ``StepBatches`` yields batches of draw numbers, so a
resumed run restarts it where it stopped and the data continue exactly.
"""

from audioae.data.audio_dir import AudioDir, DataError
from audioae.data.sampler import StepBatches
from audioae.data.synthetic import SyntheticMusic

__all__ = ["AudioDir", "DataError", "StepBatches", "SyntheticMusic"]
