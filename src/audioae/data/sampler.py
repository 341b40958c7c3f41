"""The training sampler: endless batches of draw numbers.

Every audioae dataset maps a draw number n (0, 1, 2, ...) to one deterministic crop, so the
sampler's whole state is the next number. Micro-batch m of process `rank` (of `world`) holds the
draws ((m * world + rank) * batch_size + i for i < batch_size): resuming at micro-batch m
continues the stream exactly, whatever the number of DataLoader workers, and the processes of a
distributed run see disjoint draws.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Sampler


class StepBatches(Sampler[list[int]]):
    """Yields the batches of micro-batch `start`, `start + 1`, ... forever (no `__len__`:
    the loop, not the sampler, decides when training ends)."""

    def __init__(self, batch_size: int, start: int = 0, rank: int = 0, world: int = 1) -> None:
        super().__init__()
        if start < 0 or batch_size < 1 or not 0 <= rank < world:
            raise ValueError(
                f"StepBatches(batch_size={batch_size}, start={start}, rank={rank}, "
                f"world={world}): need batch_size >= 1, start >= 0, 0 <= rank < world"
            )
        self.batch_size, self.start, self.rank, self.world = batch_size, start, rank, world

    def __iter__(self) -> Iterator[list[int]]:
        m = self.start
        while True:
            first = (m * self.world + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))
            m += 1
