"""Padding id lists into a :class:`mt.batch.Batch`, and batches of raw source text for translation."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from mt.batch import BOS_ID, EOS_ID, PAD_ID, Batch
from mt.data.sampler import EvalBatchSampler
from mt.tokenizer import Tokenizer

log = logging.getLogger(__name__)


def pad(seqs: Sequence[Sequence[int]], pad_id: int = PAD_ID) -> Tensor:
    """(B, L) int64 tensor of the sequences, right-padded with ``pad_id`` to the longest (L >= 1)."""
    longest = max((len(s) for s in seqs), default=0)
    out = torch.full((len(seqs), max(longest, 1)), pad_id, dtype=torch.long)  # (B, L)
    for i, s in enumerate(seqs):
        if len(s):
            out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


def collate_sources(ids: Sequence[int], src: Sequence[Sequence[int]]) -> Batch:
    """A source-only batch; ``src`` sequences already end with EOS."""
    return Batch(
        src=pad(src),  # (B, S)
        src_lengths=torch.tensor([len(s) for s in src], dtype=torch.long),  # (B,)
        ids=torch.tensor(ids, dtype=torch.long),  # (B,)
    )


def collate_pairs(rows: Sequence[dict]) -> Batch:
    """A training/evaluation batch from rows ``{"id", "src" (ids + EOS), "tgt" (ids y)}``.

    ``tgt_in`` is ``BOS y`` and ``tgt_out`` is ``y EOS``, both (B, T) with T = max len(y) + 1.
    """
    batch = collate_sources([r["id"] for r in rows], [r["src"] for r in rows])
    batch.tgt_in = pad([[BOS_ID, *r["tgt"]] for r in rows])  # (B, T)
    batch.tgt_out = pad([[*r["tgt"], EOS_ID] for r in rows])  # (B, T)
    return batch


def source_batches(
    tokenizer: Tokenizer, sentences: list[str], max_tokens: int, max_len: int | None
) -> Iterator[Batch]:
    """Batches of raw source sentences for translation, longest first, each sentence exactly once.

    ``Batch.ids`` are positions in ``sentences`` (to restore the input order); ``tgt_in``/``tgt_out`` are
    None. A sentence longer than ``max_len`` subwords is truncated to ``max_len`` (then EOS is appended),
    never dropped; the number truncated is logged as a warning.
    """
    encoded = tokenizer.encode(sentences)
    if max_len is not None:
        too_long = sum(len(s) > max_len for s in encoded)
        if too_long:
            log.warning(
                "truncated %d of %d source sentences to max_len=%d subwords", too_long, len(encoded), max_len
            )
            encoded = [s[:max_len] for s in encoded]
    src = [[*s, EOS_ID] for s in encoded]
    sampler = EvalBatchSampler([len(s) for s in src], None, max_tokens)
    for idx in sampler:
        yield collate_sources(idx, [src[i] for i in idx])
