"""A uniform, reproducible sample of a sentence stream in bounded memory (the tokenizer's training sample).

sentencepiece can sample by itself (``input_sentence_size``), but its reservoir is seeded differently in every
process (measured with sentencepiece 0.2.3: three runs, three models), so a large corpus would get a different
tokenizer, and different cache keys, on every fresh cache. This reservoir (Algorithm R, fixed seed, numpy draws
per batch) picks the same sentences for the same corpus in any process; sentencepiece then gets at most
``input_sentence_size`` sentences and samples nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

SEED = 0


def reservoir(batches: Iterable[list[str]], size: int, seed: int = SEED) -> Iterator[str]:
    """The sentences of ``batches`` if there are at most ``size`` of them, else ``size`` of them drawn uniformly
    without replacement; in stream order either way. Memory: the sample, never the stream."""
    rng = np.random.default_rng(seed)
    sample: list[str] = []
    where = np.zeros(size, dtype=np.int64)  # stream position of each slot's sentence
    seen = 0
    for batch in batches:
        fill = min(len(batch), size - len(sample))
        where[len(sample) : len(sample) + fill] = np.arange(seen, seen + fill)
        sample.extend(batch[:fill])
        if fill < len(batch):
            positions = np.arange(seen + fill, seen + len(batch))
            slots = rng.integers(0, positions + 1)  # item t replaces slot r ~ U[0, t] when r < size
            for i in np.flatnonzero(slots < size).tolist():
                sample[slots[i]] = batch[fill + i]
                where[slots[i]] = positions[i]
        seen += len(batch)
    order = np.argsort(where[: len(sample)], kind="stable")
    try:
        for i in order.tolist():
            yield sample[i]
    finally:
        sample.clear()  # free the strings as soon as the consumer has them
