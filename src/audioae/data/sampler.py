"""The training sampler: an endless count of draw numbers.

Every audioae dataset maps a draw number n (0, 1, 2, ...) to one deterministic crop, so the
sampler's whole state is the next number. Resuming at optimizer step s restarts it at
``s * batch_size``; the stream of examples then continues exactly where it stopped, whatever the
number of DataLoader workers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from torch.utils.data import Sampler


class Draws(Sampler[int]):
    """Yields ``start, start + 1, start + 2, ...`` forever.

    It has no ``__len__``: the loop, not the sampler, decides when training ends.
    """

    def __init__(self, start: int = 0) -> None:
        super().__init__()
        if start < 0:
            raise ValueError(f"Draws(start={start}): start must be >= 0")
        self.start = int(start)

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.start)
