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


def pack_sorted(costs: np.ndarray, max_tokens: int) -> np.ndarray:
    """:func:`pack` for non-decreasing ``costs``, as a (M, 2) array of [start, end) rows.

    The cost of a slice is then ``(end - start) * costs[end - 1]``, which only grows with ``end``: each slice
    end is found by binary search, so the work is per batch, not per item (the same slices as :func:`pack`).
    """
    bounds, start, n = [], 0, len(costs)
    while start < n:
        lo, hi = start + 1, n  # the largest end in [lo, hi] that fits; a single item always does
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if (mid - start) * int(costs[mid - 1]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        bounds.append((start, lo))
        start = lo
    return np.asarray(bounds, dtype=np.int64).reshape(-1, 2)


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

    Memory: only small numpy arrays (a few bytes per pair: the lengths, one sort key, the epoch's order);
    index lists are built one batch at a time while iterating.
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
        self.src_lengths = compact(src_lengths)
        self.tgt_lengths = compact(tgt_lengths)
        if self.src_lengths.shape != self.tgt_lengths.shape:
            raise ValueError(f"{len(self.src_lengths)} source lengths but {len(self.tgt_lengths)} target lengths")
        self.max_tokens, self.seed = max_tokens, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start_batch = 0  # batches of the epoch to skip (set by ResumableDataLoader while it resumes)
        self._key, bucket_max = _sort_key(self.src_lengths, self.tgt_lengths, bucket_width)
        order = np.argsort(self._key, kind="stable")
        bounds = pack_sorted(bucket_max[order], max_tokens)  # the same every epoch (see class doc)
        self._starts, self._ends = bounds[:, 0], bounds[:, 1]
        n = len(bounds)
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
        return list(self._iter_epoch(epoch, 0))

    def __iter__(self) -> Iterator[list[int]]:
        return self._iter_epoch(self.epoch, self.start_batch)

    def __len__(self) -> int:
        return self._per_rank

    def padding_fraction(self, epoch: int = 0) -> float:
        """Padded / all positions of this rank's src+tgt tensors in an epoch."""
        order, mine = self._epoch(epoch)
        if not len(mine):
            return 0.0
        total = real = 0
        sizes = (self._ends - self._starts)[mine]
        for lengths in (self.src_lengths, self.tgt_lengths):
            sorted_lengths = lengths[order]  # (N,) in the epoch's order
            longest = np.maximum.reduceat(sorted_lengths, self._starts)[mine]
            total += int((sizes * longest.astype(np.int64)).sum())
            real += int(np.add.reduceat(sorted_lengths, self._starts, dtype=np.int64)[mine].sum())
        return 0.0 if total == 0 else 1.0 - real / total

    # -- internals ----------------------------------------------------------------------------------------
    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(order, mine): every pair in the epoch's sorted order (N,), and this rank's batch numbers in turn.

        ``rng.shuffle`` of an int32 range is the same permutation as ``rng.permutation(N)``, in half the memory.
        """
        rng = np.random.default_rng([self.seed, epoch])
        perm = np.arange(len(self._key), dtype=np.int32)
        rng.shuffle(perm)
        order = perm[np.argsort(self._key[perm], kind="stable")]  # random among equal keys
        shuffled = rng.permutation(len(self._starts))
        if 0 < len(shuffled) < self.world_size:
            shuffled = np.resize(shuffled, self.world_size)  # repeat batches so that every rank gets one
        return order, shuffled[self.rank :: self.world_size][: self._per_rank]

    def _iter_epoch(self, epoch: int, skip: int) -> Iterator[list[int]]:
        order, mine = self._epoch(epoch)
        for b in mine[skip:].tolist():
            yield order[self._starts[b] : self._ends[b]].tolist()


def compact(values: Sequence[int] | np.ndarray) -> np.ndarray:
    """``values`` as the smallest signed integer array that holds them (int16 for sentence lengths)."""
    a = np.asarray(values)
    if a.dtype.kind not in "iu":
        a = a.astype(np.int64)
    for dtype in (np.int16, np.int32):
        if not len(a) or (int(a.min()) >= np.iinfo(dtype).min and int(a.max()) <= np.iinfo(dtype).max):
            return a.astype(dtype, copy=False)
    return a.astype(np.int64, copy=False)


def _sort_key(src: np.ndarray, tgt: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(key, bucketed max(S, T)): one integer per pair that sorts like (bucketed max(S, T), bucketed S)."""
    if not len(src):
        return np.zeros(0, np.int16), np.zeros(0, np.int16)
    top = int(max(src.max(), tgt.max())) + width  # above every bucketed length
    dtype = np.int32 if top * top < 2**31 else np.int64
    bucket_src = -(-src.astype(dtype) // width) * width  # lengths rounded up to the bucket width
    bucket_max = np.maximum(bucket_src, -(-tgt.astype(dtype) // width) * width)
    return compact(bucket_max * top + bucket_src), compact(bucket_max)


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
