"""Tokenization of raw splits into the tokenized cache, shard by shard, with the training-pair filters.

Every row of a split is written (``datasets.map``, batched, optionally with ``num_proc`` processes) with its
ids, lengths, text and a ``drop`` code; the training pairs that fail the filters are skipped later through an
index, so what was dropped and why stays countable. The raw split is read shard by shard (``data.shard_size``
rows, plain reads, see :mod:`mt.data.arrowfiles`) and each shard becomes its own tokenized Arrow file; only the
numeric columns of each shard are kept in memory (a few bytes per row).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset, Features, List, Value

from mt.batch import EOS_ID
from mt.data.arrowfiles import RECORD_BATCH_ROWS, iter_column, iter_shards
from mt.data.config import DataConfig
from mt.data.sample import reservoir
from mt.tokenizer import Tokenizer

DROP_REASONS = ("empty", "too_long", "ratio")  # drop codes 1, 2, 3 (0 = kept)
FEATURES = Features(
    {
        "id": Value("int64"),
        "src": List(Value("int32")),  # subword ids + EOS
        "tgt": List(Value("int32")),  # subword ids y (BOS/EOS are added at collate time)
        "n_src": Value("int32"),  # subwords, specials excluded
        "n_tgt": Value("int32"),
        "src_text": Value("string"),
        "tgt_text": Value("string"),
        "ctrl": Value("int32"),
        "drop": Value("int8"),
    }
)


@dataclass
class TokenizedSplit:
    """What tokenizing a split produced: its files (in row order) and per-row numeric columns."""

    files: list[str]  # file names in the tokenized cache folder
    n_src: np.ndarray  # (N,) int32 subwords, specials excluded
    n_tgt: np.ndarray  # (N,) int32
    drop: np.ndarray  # (N,) int8 DROP_REASONS code, 0 = kept
    control_chars: int  # control characters replaced while reading


def tokenize_split(
    raw: Path, name: str, tokenizer: Tokenizer, cfg: DataConfig, folder: Path, key: str
) -> TokenizedSplit:
    """Write every row of the raw split file tokenized into ``folder``, one file per shard.

    A shard file that is already there (an interrupted preparation of the same cache key) is reused.
    """
    train = name == "train"
    files, columns, ctrl = [], {"n_src": [], "n_tgt": [], "drop": []}, 0
    for start, end, table in iter_shards(raw, cfg.shard_size):
        out = Dataset(table).map(
            encode_batch,
            batched=True,
            batch_size=RECORD_BATCH_ROWS,  # each batch is written as one record batch
            fn_kwargs={
                "tokenizer": tokenizer,
                "max_len": cfg.max_len if train else None,
                "max_len_ratio": cfg.max_len_ratio,
            },
            remove_columns=table.column_names,
            features=FEATURES,
            cache_file_name=str(folder / f"{name}.{start:010d}-{end:010d}.tok.arrow"),
            writer_batch_size=RECORD_BATCH_ROWS,
            new_fingerprint=f"{key}-{name}-{start}-{end}-tok",
            num_proc=cfg.num_proc if cfg.num_proc > 1 and end - start > 1 else None,
            desc=f"tokenizing {name} [{start:,}, {end:,})",
        )
        files += [Path(f["filename"]).name for f in out.cache_files]
        numbers = out.select_columns(["n_src", "n_tgt", "drop", "ctrl"]).with_format("arrow")[:]
        for column, values in columns.items():
            values.append(numbers[column].to_numpy())
        ctrl += int(numbers["ctrl"].to_numpy().sum(dtype=np.int64))
        del table, out, numbers  # unmap this shard's file before the next one
    n_src, n_tgt, drop = (np.concatenate(columns[c]) for c in ("n_src", "n_tgt", "drop"))
    return TokenizedSplit(files, n_src, n_tgt, drop, ctrl)


def encode_batch(batch: dict, tokenizer: Tokenizer, max_len: int | None, max_len_ratio: float) -> dict:
    """Tokenize a batch of pairs; ``drop`` is a DROP_REASONS code (1-based) when max_len is set (train)."""
    src, tgt = tokenizer.encode(batch["src"]), tokenizer.encode(batch["tgt"])
    drop = []
    for s, t in zip(src, tgt, strict=True):
        code = 0
        if max_len is not None:
            if not s or not t:
                code = 1
            elif len(s) > max_len or len(t) > max_len:
                code = 2
            elif max(len(s), len(t)) > max_len_ratio * min(len(s), len(t)):
                code = 3
        drop.append(code)
    return {
        "id": batch["id"],
        "src": [s + [EOS_ID] for s in src],
        "tgt": tgt,
        "n_src": [len(s) for s in src],
        "n_tgt": [len(t) for t in tgt],
        "src_text": batch["src"],
        "tgt_text": batch["tgt"],
        "ctrl": batch["ctrl"],
        "drop": drop,
    }


def training_sentences(train: Path, src: str, tgt: str, sample_size: int) -> Iterator[str]:
    """The non-blank sentences of both sides of the raw training split, languages in sorted order (en-de and de-en
    share one model); a reproducible uniform sample of ``sample_size`` of them when there are more (0 = all).

    Streamed batch by batch; only the sample is held (see :mod:`mt.data.sample`).
    """
    batches = (
        [s for s in batch if s.strip()]
        for lang in sorted([src, tgt])
        for batch in iter_column(train, "src" if lang == src else "tgt")
    )
    if sample_size <= 0:
        yield from (s for batch in batches for s in batch)
    else:
        yield from reservoir(batches, sample_size)
