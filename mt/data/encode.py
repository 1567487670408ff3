"""Tokenization of raw splits into the tokenized cache, shard by shard, with the training-pair filters.

Every row of a split is written (``datasets.map``, batched, optionally with ``num_proc`` processes) with its
ids, lengths, text and a ``drop`` code; the training pairs that fail the filters are skipped later through an
index, so what was dropped and why stays countable. Each shard of ``data.shard_size`` rows is its own Arrow file,
read from a fresh memory map (see :mod:`mt.data.shards`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from datasets import Dataset, Features, List, Value

from mt.batch import EOS_ID
from mt.data.config import DataConfig
from mt.data.shards import iter_column, shards
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


def tokenize_split(
    raw: Dataset, name: str, tokenizer: Tokenizer, cfg: DataConfig, folder: Path, key: str
) -> list[str]:
    """Write every row of ``raw`` tokenized into ``folder``; returns the file names, in row order.

    A shard file that is already there (an interrupted preparation of the same cache key) is reused.
    """
    train = name == "train"
    files = []
    for start, end, part in shards(raw, cfg.shard_size):
        out = part.map(
            encode_batch,
            batched=True,
            batch_size=1000,
            fn_kwargs={
                "tokenizer": tokenizer,
                "max_len": cfg.max_len if train else None,
                "max_len_ratio": cfg.max_len_ratio,
            },
            remove_columns=part.column_names,
            features=FEATURES,
            cache_file_name=str(folder / f"{name}.{start:010d}-{end:010d}.tok.arrow"),
            new_fingerprint=f"{key}-{name}-{start}-{end}-tok",
            num_proc=cfg.num_proc if cfg.num_proc > 1 and end - start > 1 else None,
            desc=f"tokenizing {name} [{start:,}, {end:,})",
        )
        files += [Path(f["filename"]).name for f in out.cache_files]
        del part, out
    return files


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


def training_sentences(train: Dataset, src: str, tgt: str, shard_size: int) -> Iterator[str]:
    """Both sides of the training split, languages in sorted order (en-de and de-en share one model).

    Streamed shard by shard: sentencepiece keeps only its ``input_sentence_size`` sample (reservoir sampling).
    """
    for lang in sorted([src, tgt]):
        column = "src" if lang == src else "tgt"
        for batch in iter_column(train, column, shard_size):
            yield from (s for s in batch if s.strip())
