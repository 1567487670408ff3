"""Passes over Arrow-backed datasets in bounded memory: one shard at a time, each from a fresh memory map.

A memory-mapped Arrow file costs no memory until it is read, but every page a process has read stays resident
(and counts in its RSS) for as long as the file stays mapped: one pass over a 10M-pair split would keep
gigabytes resident. So whole-split passes (tokenizer sample, tokenization, length columns) read shard by shard,
each shard from its own mapping that is dropped when the next one is opened; at most two shards' pages are
resident at once, whatever the corpus size. The page cache keeps the file's data for the next shard/pass.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence

import numpy as np
from datasets import Dataset


def shard_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """[start, end) row ranges of ``size`` rows covering ``n`` rows (one empty range when n = 0)."""
    return [(a, min(a + size, n)) for a in range(0, n, size)] or [(0, 0)]


def fresh(ds: Dataset) -> Dataset:
    """The same rows with memory maps of their own (a memory-mapped dataset pickles as its file paths)."""
    return pickle.loads(pickle.dumps(ds))


def shards(ds: Dataset, size: int) -> Iterator[tuple[int, int, Dataset]]:
    """``(start, end, rows start..end-1)`` of ``ds``; each shard is a fresh mapping (drop it before the next)."""
    for start, end in shard_bounds(len(ds), size):
        yield start, end, fresh(ds).select(range(start, end))


def read_columns(ds: Dataset, names: Sequence[str], size: int) -> dict[str, np.ndarray]:
    """Numeric columns of ``ds`` as (N,) arrays of their stored dtype (int8/int32: no int64 copies)."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for _, _, part in shards(ds, size):
        table = part.select_columns(list(names)).with_format("arrow")[:]
        for name in names:
            parts[name].append(table[name].to_numpy())
        del part, table
    return {name: np.concatenate(arrays) for name, arrays in parts.items()}


def iter_column(ds: Dataset, name: str, size: int, batch_size: int = 10_000) -> Iterator[list]:
    """Batches (Python lists) of one column of ``ds``, read shard by shard."""
    for _, _, part in shards(ds, size):
        for batch in part.select_columns([name]).iter(batch_size=batch_size):
            yield batch[name]
        del part
