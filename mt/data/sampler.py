"""Batch samplers by token budget: bucketed and reshuffled for training, sorted and exact for evaluation.

A batch's cost is ``batch_size * max(S, T)`` with S, T the padded source and target tensor lengths
(source with EOS, target with BOS/EOS shift); every batch has cost <= ``max_tokens``, except a single pair
longer than the budget, which goes alone in its batch (it is never dropped).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

log = logging.getLogger(__name__)


def pack(costs: np.ndarray, max_tokens: int) -> list[tuple[int, int]]:
    """Greedy [start, end) slices of ``costs`` (in order) with ``(end - start) * max(costs[start:end]) <= max_tokens``.

    A single item above the budget gets a slice of its own.
    """
    bounds, start, longest = [], 0, 0
    for i, cost in enumerate(costs.tolist()):
        longest_with = max(longest, cost)
        if i > start and (i - start + 1) * longest_with > max_tokens:
            bounds.append((start, i))
            start, longest_with = i, cost
        longest = longest_with
    if len(costs):
        bounds.append((start, len(costs)))
    return bounds


def padding_fraction(
    batches: Sequence[Sequence[int]], src_lengths: np.ndarray, tgt_lengths: np.ndarray | None
) -> float:
    """Padded positions / all positions of the src (and tgt) tensors of these batches."""
    total = real = 0
    for b in batches:
        idx = np.asarray(b)
        for lengths in (src_lengths, tgt_lengths):
            if lengths is not None:
                sub = lengths[idx]
                total += len(idx) * int(sub.max())
                real += int(sub.sum())
    return 0.0 if total == 0 else 1.0 - real / total


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Training batches: length-bucketed, reshuffled every epoch from (seed, epoch), sharded across ranks.

    Each epoch the pairs are sorted by (bucketed max(S, T), bucketed S) with random order among equal keys,
    cut into batches by the budget, and the batch order is shuffled. Because the sorted key sequence is the
    same every epoch, the batch boundaries and hence ``len()`` are fixed; only membership (among pairs of
    equal bucketed length) and order change. Under DDP, rank r takes batches r, r+W, ... of the shuffled
    list; the last ``M mod W`` batches of an epoch (random ones, different each epoch) are left out so that
    every rank gets the same number of different batches. Lightning calls ``set_epoch`` through the
    ``sampler`` attribute (it looks at ``dataloader.batch_sampler.sampler``, not ``batch_sampler`` itself).
    """

    def __init__(
        self,
        src_lengths: Sequence[int] | np.ndarray,
        tgt_lengths: Sequence[int] | np.ndarray,
        max_tokens: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        bucket_width: int = 1,
    ) -> None:
        """:param src_lengths: (N,) source tensor lengths (EOS included); tgt_lengths: (N,) target tensor lengths."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.src_lengths = np.asarray(src_lengths, dtype=np.int64)
        self.tgt_lengths = np.asarray(tgt_lengths, dtype=np.int64)
        self.max_tokens, self.seed = max_tokens, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start_batch = 0  # batches of the epoch to skip (set by ResumableDataLoader while it resumes)
        w = bucket_width
        self._bucket_src = -(-self.src_lengths // w) * w  # lengths rounded up to the bucket width
        self._bucket_max = np.maximum(self._bucket_src, -(-self.tgt_lengths // w) * w)
        order = np.lexsort((self._bucket_src, self._bucket_max))
        self._bounds = pack(self._bucket_max[order], max_tokens)  # the same every epoch (see class doc)
        n = len(self._bounds)
        self._per_rank = n // world_size if n >= world_size else (1 if n else 0)
        if 0 < n < world_size:
            log.warning("only %d training batches for %d ranks: some ranks repeat a batch", n, world_size)

    @property
    def sampler(self) -> TokenBudgetBatchSampler:
        """Itself, so that Lightning's ``_set_sampler_epoch`` finds :meth:`set_epoch`."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle the next iteration uses."""
        self.epoch = epoch

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of an epoch, in iteration order (a pure function of seed, epoch and rank)."""
        rng = np.random.default_rng([self.seed, epoch])
        perm = rng.permutation(len(self.src_lengths))
        order = perm[np.lexsort((self._bucket_src[perm], self._bucket_max[perm]))]  # random among ties
        all_batches = [order[a:b].tolist() for a, b in self._bounds]
        shuffled = [all_batches[i] for i in rng.permutation(len(all_batches))]
        if len(shuffled) < self.world_size and shuffled:
            shuffled = (shuffled * self.world_size)[: self.world_size]
        return shuffled[self.rank :: self.world_size][: self._per_rank]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches(self.epoch)[self.start_batch :])

    def __len__(self) -> int:
        return self._per_rank

    def padding_fraction(self, epoch: int = 0) -> float:
        """Padded / all positions of this rank's src+tgt tensors in an epoch."""
        return padding_fraction(self.batches(epoch), self.src_lengths, self.tgt_lengths)


class EvalBatchSampler(Sampler[list[int]]):
    """Evaluation batches: every sentence exactly once, longest first, split disjointly across ranks.

    Batches are cut by the budget in order of decreasing length; if their number does not divide by
    ``world_size``, the largest batches are halved until it does (so ranks get equal batch counts, as long as
    there are at least ``world_size`` sentences). Rank r takes batches r, r+W, ...
    """

    def __init__(
        self,
        src_lengths: Sequence[int] | np.ndarray,
        tgt_lengths: Sequence[int] | np.ndarray | None,
        max_tokens: int,
        *,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        """:param tgt_lengths: target tensor lengths, or None for source-only batches."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.src_lengths = np.asarray(src_lengths, dtype=np.int64)
        self.tgt_lengths = None if tgt_lengths is None else np.asarray(tgt_lengths, dtype=np.int64)
        cost = (
            self.src_lengths if self.tgt_lengths is None else np.maximum(self.src_lengths, self.tgt_lengths)
        )
        order = np.argsort(-cost, kind="stable")
        batches = [order[a:b].tolist() for a, b in pack(cost[order], max_tokens)]
        batches = _split_to_multiple(batches, world_size)
        self._batches = batches[rank::world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)

    def padding_fraction(self) -> float:
        return padding_fraction(self._batches, self.src_lengths, self.tgt_lengths)


def _split_to_multiple(batches: list[list[int]], world_size: int) -> list[list[int]]:
    """Halve the largest batches until the count is a multiple of world_size (or nothing can be split)."""
    batches = list(batches)
    while len(batches) % world_size:
        i = max(range(len(batches)), key=lambda j: len(batches[j]), default=None)
        if i is None or len(batches[i]) < 2:
            break
        b = batches[i]
        batches[i : i + 1] = [b[: len(b) // 2], b[len(b) // 2 :]]
    return batches
