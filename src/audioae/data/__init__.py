"""Data: endless, deterministic datasets indexed by a draw number, and their sampler.

Every dataset maps a draw number n (0, 1, 2, ...) to a float32 tensor (channels, sample_size) in
[-1, 1] that depends only on (seed, n). ``StepBatches`` yields batches of draw numbers, so a
resumed run restarts it where it stopped and the data continue exactly.

Every dataset also has ``held_out(path=None)``: a dataset of the same kind whose items are never
drawn for training (held-out files, or draw numbers no run reaches), which demos and
validation use, or of every file under ``path`` (a held-out folder); and ``held_out_names``,
the files it keeps out of training ([] when it has none).
"""

from audioae.data.audio_dir import EXTENSIONS, AudioDir, DataError, find_audio
from audioae.data.pre_encoded import PreEncoded
from audioae.data.sampler import StepBatches
from audioae.data.synthetic import SyntheticMusic

__all__ = [
    "EXTENSIONS",
    "AudioDir",
    "DataError",
    "PreEncoded",
    "StepBatches",
    "SyntheticMusic",
    "find_audio",
]
