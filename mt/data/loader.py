"""A training DataLoader that can save and restore its position inside an epoch (mid-epoch resume).

The state is (epoch, batches consumed). Batches are counted when this loader hands them to the consumer,
not in the sampler, so batches prefetched by workers are not counted. Lightning 2.6 stores
``state_dict()`` in checkpoints and calls ``load_state_dict()`` on resume (it needs no prefetch of its own
for a loader with a length); the next iteration of that epoch then skips the consumed batches and yields
exactly the remaining ones, in the same order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from mt.data.sampler import TokenBudgetBatchSampler

log = logging.getLogger(__name__)


class ResumableDataLoader(DataLoader):
    """DataLoader over a :class:`TokenBudgetBatchSampler` with ``state_dict``/``load_state_dict``."""

    def __init__(
        self,
        dataset: Dataset,
        batch_sampler: TokenBudgetBatchSampler,
        collate_fn: Callable[[list[Any]], Any],
        num_workers: int,
    ) -> None:
        # A private generator: creating an iterator draws a worker base seed from it, and drawing that from the
        # global torch RNG would shift the dropout stream of a run resumed mid-epoch (which creates one iterator
        # more than the uninterrupted run) by one draw.
        generator = torch.Generator().manual_seed(batch_sampler.seed)
        super().__init__(dataset, batch_sampler=batch_sampler, collate_fn=collate_fn, num_workers=num_workers,
                         generator=generator)
        self._epoch = batch_sampler.epoch  # epoch of the current/last iteration
        self._consumed = 0  # batches handed out in that iteration (skipped ones included)
        self._resume: tuple[int, int] | None = None  # (epoch, batches) to skip in the next iteration

    def __iter__(self) -> Iterator[Any]:
        # A generator: the epoch is read at the first next(), after Lightning's set_epoch.
        sampler: TokenBudgetBatchSampler = self.batch_sampler
        skip = 0
        if self._resume is not None:
            epoch, consumed = self._resume
            self._resume = None
            if epoch == sampler.epoch:
                skip = min(consumed, len(sampler))
        self._epoch, self._consumed = sampler.epoch, skip
        sampler.start_batch = skip
        try:  # the sampler is iterated (once or, with workers, twice) while the iterator is built
            batches = super().__iter__()
        finally:
            sampler.start_batch = 0
        for batch in batches:
            self._consumed += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """Epoch and number of batches already consumed in it."""
        return {"epoch": self._epoch, "consumed": self._consumed, "batches": len(self)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue ``state``'s epoch after its consumed batches at the next iteration."""
        if state["batches"] != len(self):
            log.warning(
                "resuming a data position saved with %d batches per epoch, now %d (data, max_tokens or number of "
                "devices changed): the rest of this epoch is only approximately the same",
                state["batches"],
                len(self),
            )
        self.batch_sampler.set_epoch(state["epoch"])
        self._epoch, self._consumed = state["epoch"], state["consumed"]
        self._resume = (state["epoch"], state["consumed"])
