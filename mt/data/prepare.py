"""Prepare a corpus once: tokenizer, tokenized splits and their statistics, all cached under ``cache_dir``.

Cache layout (``paths.cache_dir``)::

    datasets/                           datasets' own cache (load_dataset / from_generator)
    raw/                                hf source: the id/src/tgt/ctrl view of each split
    tokenizer/<key>/spm.model           key = hash(training corpus identity, data.tokenizer settings)
    tokenized/<name>-<pair>-<key>/      key = hash(all splits' identity, tokenizer sha256, filter settings)
        <split>.tok.arrow               every row of the split, tokenized (datasets.map with cache_file_name);
                                        the training rows that fail the filters are skipped through an index
        meta.json                       files + statistics; written last, so its presence means "complete"

A second preparation of the same data only stats the input files, loads the tokenizer and memory-maps the
arrow files: nothing is read or tokenized again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from datasets import Dataset, Features, List, Value, concatenate_datasets

from mt.batch import EOS_ID
from mt.data.config import DataConfig
from mt.data.corpus import open_corpus, split_names
from mt.tokenizer import Tokenizer, atomic_write, load_or_train

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when the tokenized layout or the filtering rules change
DROP_REASONS = ("empty", "too_long", "ratio")  # drop codes 1, 2, 3 (0 = kept)
_FEATURES = Features(
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
class SplitStats:
    """Counts of one prepared split."""

    sentences: int  # pairs read from the corpus
    kept: int  # pairs in the prepared split (all of them except for train)
    src_tokens: int  # subwords of the kept pairs, specials not counted
    tgt_tokens: int
    dropped: dict[str, int] = field(default_factory=dict)  # train only: reason -> pairs
    empty_kept: int = 0  # validation/test: pairs with an empty side, kept (never dropped or shifted)
    control_chars: int = 0  # control characters replaced by spaces while reading


@dataclass
class Prepared:
    """A prepared corpus: tokenizer, tokenized splits (train filtered) and statistics."""

    tokenizer: Tokenizer
    splits: dict[str, Dataset]  # split -> columns of _FEATURES
    stats: dict[str, SplitStats]
    folder: Path  # the tokenized cache folder


def prepare(cfg: DataConfig, cache_dir: Path) -> Prepared:
    """Prepare (or load from the cache) the tokenizer and every split of the configured corpus."""
    cache_dir = Path(cache_dir)
    corpus = open_corpus(cfg, cache_dir)
    names = list(split_names(cfg))
    identities = {name: corpus.identity(name) for name in names}
    raw: dict[str, Dataset] = {}

    def raw_split(name: str) -> Dataset:
        if name not in raw:
            raw[name] = corpus.load(name)
        return raw[name]

    settings = asdict(cfg.tokenizer)
    model_settings = {k: v for k, v in settings.items() if k != "num_threads"}  # threads: same model
    tok_key = _digest({"corpus": identities["train"], "settings": model_settings, "version": FORMAT_VERSION})
    tokenizer = load_or_train(
        cache_dir / "tokenizer" / tok_key,
        lambda: _training_sentences(raw_split("train"), cfg.src, cfg.tgt),
        settings,
        about={"source": cfg.source, "name": cfg.name, "train": identities["train"]},
    )

    key = _digest(
        {
            "splits": identities,
            "tokenizer": tokenizer.sha256,
            "pair": cfg.pair,
            "max_len": cfg.max_len,
            "max_len_ratio": cfg.max_len_ratio,
            "version": FORMAT_VERSION,
        }
    )
    folder = cache_dir / "tokenized" / f"{cfg.name}-{cfg.pair}-{key}"
    cached = _load_cached(folder, names)
    if cached is not None:
        log.info("data: reusing tokenized splits in %s", folder)
        splits, stats = cached
        return Prepared(tokenizer, splits, stats, folder)

    log.info("data: tokenizing %s %s into %s", cfg.name, cfg.pair, folder)
    folder.mkdir(parents=True, exist_ok=True)
    splits, stats = {}, {}
    for name in names:
        splits[name], stats[name] = _tokenize_split(raw_split(name), name, tokenizer, cfg, folder, key)
    meta = {
        "version": FORMAT_VERSION,
        "files": {n: [Path(f["filename"]).name for f in ds.cache_files] for n, ds in splits.items()},
        "stats": {n: asdict(s) for n, s in stats.items()},
        "tokenizer": {"path": str(tokenizer.path), "sha256": tokenizer.sha256},
        "splits": identities,
    }
    atomic_write(folder / "meta.json", json.dumps(meta, indent=2, sort_keys=True).encode())
    return Prepared(tokenizer, splits, stats, folder)


def _tokenize_split(
    raw: Dataset, name: str, tokenizer: Tokenizer, cfg: DataConfig, folder: Path, key: str
) -> tuple[Dataset, SplitStats]:
    train = name == "train"
    full = raw.map(
        _encode_batch,
        batched=True,
        batch_size=1000,
        fn_kwargs={
            "tokenizer": tokenizer,
            "max_len": cfg.max_len if train else None,
            "max_len_ratio": cfg.max_len_ratio,
        },
        remove_columns=raw.column_names,
        features=_FEATURES,
        cache_file_name=str(folder / f"{name}.tok.arrow"),
        new_fingerprint=f"{key}-{name}-tok",
        num_proc=cfg.num_proc if cfg.num_proc > 1 else None,
        desc=f"tokenizing {name}",
    )
    n_src, n_tgt, drop, ctrl = (column(full, c) for c in ("n_src", "n_tgt", "drop", "ctrl"))
    kept = drop == 0
    stats = SplitStats(
        sentences=len(full),
        kept=int(kept.sum()),
        src_tokens=int(n_src[kept].sum()),
        tgt_tokens=int(n_tgt[kept].sum()),
        control_chars=int(ctrl.sum()),
    )
    if stats.control_chars:
        log.info("data: %s: replaced %d control characters by spaces", name, stats.control_chars)
    if train:
        counts = np.bincount(drop, minlength=len(DROP_REASONS) + 1)
        stats.dropped = {reason: int(counts[i + 1]) for i, reason in enumerate(DROP_REASONS)}
        log.info(
            "data: train: kept %d of %d pairs; dropped %s (max_len=%d, max_len_ratio=%g)",
            stats.kept,
            stats.sentences,
            stats.dropped,
            cfg.max_len,
            cfg.max_len_ratio,
        )
        full = _kept_rows(full, kept)
    else:
        stats.empty_kept = int(((n_src == 0) | (n_tgt == 0)).sum())
    return full, stats


def _encode_batch(batch: dict, tokenizer: Tokenizer, max_len: int | None, max_len_ratio: float) -> dict:
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


def _training_sentences(train: Dataset, src: str, tgt: str) -> Iterator[str]:
    """Both sides of the training split, languages in sorted order (en-de and de-en share one model)."""
    for lang in sorted([src, tgt]):
        column = "src" if lang == src else "tgt"
        for batch in train.select_columns([column]).iter(batch_size=10_000):
            yield from (s for s in batch[column] if s.strip())


def _load_cached(folder: Path, names: list[str]) -> tuple[dict[str, Dataset], dict[str, SplitStats]] | None:
    meta_file = folder / "meta.json"
    if not meta_file.is_file():
        return None
    meta = json.loads(meta_file.read_text())
    files = meta.get("files", {})
    if meta.get("version") != FORMAT_VERSION or any(
        name not in files or not all((folder / f).is_file() for f in files[name]) for name in names
    ):
        return None
    splits = {}
    for name in names:
        parts = [Dataset.from_file(str(folder / f)) for f in files[name]]
        splits[name] = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    stats = {name: SplitStats(**meta["stats"][name]) for name in names}
    for s in stats.values():  # JSON sorted the keys: restore the DROP_REASONS order
        s.dropped = {r: s.dropped[r] for r in DROP_REASONS if r in s.dropped}
    splits["train"] = _kept_rows(splits["train"], column(splits["train"], "drop") == 0)
    return splits, stats


def column(ds: Dataset, name: str) -> np.ndarray:
    """(N,) int64 values of a numeric column, through arrow (fast; honours an index view)."""
    return ds.select_columns([name]).with_format("arrow")[:][name].to_numpy().astype(np.int64)


def _kept_rows(ds: Dataset, kept: np.ndarray) -> Dataset:
    """The rows where ``kept`` is true, as an in-memory index view over the same arrow file."""
    return ds if kept.all() else ds.select(np.flatnonzero(kept), keep_in_memory=True)


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
