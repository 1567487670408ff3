"""Words from sentencepiece pieces: a piece starting with "▁" begins a word (sentencepiece writes the
whitespace before a word as "▁", and no piece inside a word starts with it).

Used for latency in words and by the streaming command, which only ever reads and writes whole words:
a source word can be tokenized once its end (a following space or the end of the line) has arrived, and a
target word can be printed once the next word has started (or the translation has ended).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import sentencepiece as spm

from mt.tokenizer import Tokenizer

WORD_START = "\u2581"  # "▁"


@lru_cache(maxsize=4)
def _processor(model_bytes: bytes) -> spm.SentencePieceProcessor:
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(model_bytes)
    return sp


def pieces(tokenizer: Tokenizer, ids: Sequence[int]) -> list[str]:
    """The sentencepiece pieces of ``ids`` (e.g. "▁Ein", "t")."""
    return [_processor(tokenizer.model_bytes).id_to_piece(int(i)) for i in ids]


def starts_word(pieces: Sequence[str]) -> list[bool]:
    """Whether each piece begins a new word (the first piece always does)."""
    return [i == 0 or p.startswith(WORD_START) for i, p in enumerate(pieces)]


def words_read(src_pieces: Sequence[str]) -> list[int]:
    """For d = 0..|x| subwords read, the number of source words that had to arrive: entry d counts the words
    the first d pieces belong to (a word's pieces only exist once the whole word has arrived)."""
    counts, n = [0], 0
    for start in starts_word(src_pieces):
        n += start
        counts.append(n)
    return counts


def source_word_delays(delays: Sequence[int], src_pieces: Sequence[str]) -> list[int]:
    """Subword delays (source subwords read per emission) -> source words read per emission."""
    counts = words_read(src_pieces)
    return [counts[min(int(d), len(src_pieces))] for d in delays]


def group_words(pieces: Sequence[str]) -> list[list[int]]:
    """Indices of the pieces of each word, in order."""
    groups: list[list[int]] = []
    for i, start in enumerate(starts_word(pieces)):
        if start:
            groups.append([])
        groups[-1].append(i)
    return groups


def target_word_delays(tgt_pieces: Sequence[str], delays: Sequence[float], end_delay: float) -> list[float]:
    """Per target word, the delay at which it was committed: when the next word's first piece was emitted,
    or ``end_delay`` (when the translation ended) for the last word. ``delays`` has one entry per piece."""
    if len(tgt_pieces) != len(delays):
        raise ValueError(f"{len(tgt_pieces)} target pieces but {len(delays)} delays")
    groups = group_words(tgt_pieces)
    return [delays[groups[w + 1][0]] if w + 1 < len(groups) else end_delay for w in range(len(groups))]
