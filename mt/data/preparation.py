"""Prepare a corpus once: tokenizer, tokenized splits and their statistics, all cached under ``cache_dir``.

Cache layout (``paths.cache_dir``)::

    datasets/                           datasets' own cache (load_dataset / from_generator)
    raw/                                hf source: the id/src/tgt/ctrl view of each split
    tokenizer/<key>/spm.model           key = hash(training corpus identity, data.tokenizer settings)
    tokenized/<name>-<pair>-<key>/      key = hash(all splits' identity, tokenizer sha256, filter settings)
        <split>.<start>-<end>.tok.arrow every row of the split, tokenized, one file per shard of data.shard_size
                                        rows (see mt.data.encode); the training rows that fail the filters are
                                        skipped through an index
        <split>.lengths.npz             per row: subwords of each side and the drop code (numpy)
        meta.json                       files + statistics; written last, so its presence means "complete"

A second preparation of the same data only stats the input files, loads the tokenizer, memory-maps the arrow
files (untouched until rows are drawn) and loads the length arrays: nothing is read or tokenized again.

Memory stays bounded whatever the corpus size: every pass streams batch by batch or shard by shard
(:mod:`mt.data.arrowfiles`), the tokenizer trains on a bounded sample, and what is kept per sentence is a few
bytes of lengths (numpy).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasets import Dataset, concatenate_datasets

from mt.data.config import DataConfig
from mt.data.corpus import open_corpus, split_names
from mt.data.encode import DROP_REASONS, tokenize_split, training_sentences
from mt.data.errors import DataError
from mt.data.sampler import compact
from mt.textio import atomic_open
from mt.tokenizer import Tokenizer, TokenizerError, atomic_write, load_or_train

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when the tokenized content or the filtering rules change (not for the file layout)


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
class SplitLengths:
    """Tensor lengths of a prepared split's rows, in the order of ``Prepared.splits[split]`` (what samplers need)."""

    src: np.ndarray  # (N,) source subwords + EOS (int16 unless a sentence is longer than 32k subwords)
    tgt: np.ndarray  # (N,) target subwords + 1 (BOS/EOS shift)


@dataclass
class Prepared:
    """A prepared corpus: tokenizer, tokenized splits (train filtered), their lengths and statistics."""

    tokenizer: Tokenizer
    splits: dict[str, Dataset]  # split -> columns of mt.data.encode.FEATURES, memory-mapped
    stats: dict[str, SplitStats]
    folder: Path  # the tokenized cache folder
    lengths: dict[str, SplitLengths]


def prepare(cfg: DataConfig, cache_dir: Path, tokenizer: Tokenizer | None = None) -> Prepared:
    """Prepare (or load from the cache) the tokenizer and every split of the configured corpus.

    :param tokenizer: use this model (e.g. a checkpoint's, see :meth:`Tokenizer.from_bytes`) instead of
        ``data.tokenizer.path`` or a model trained on the training split.
    """
    cache_dir = Path(cache_dir)
    corpus = open_corpus(cfg, cache_dir)
    names = list(split_names(cfg))
    identities = {name: corpus.identity(name) for name in names}
    raw: dict[str, Path] = {}

    def raw_split(name: str) -> Path:
        if name not in raw:
            raw[name] = corpus.load(name)
        return raw[name]

    tokenizer = _tokenizer(cfg, cache_dir, tokenizer, identities["train"], lambda: raw_split("train"))
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
    meta = _read_meta(folder, names)
    if meta is not None:
        try:
            return _load_cached(folder, meta, names, tokenizer)
        except Exception as e:  # a file damaged in a way its size and checksum did not show: rebuild it
            log.warning("data: the cached splits in %s cannot be read (%s); tokenizing again", folder,
                        " ".join(str(e).split())[:200])
            shutil.rmtree(folder, ignore_errors=True)

    log.info("data: tokenizing %s %s into %s", cfg.name, cfg.pair, folder)
    folder.mkdir(parents=True, exist_ok=True)
    files, saved, splits, lengths, stats = {}, {}, {}, {}, {}
    for name in names:
        done = tokenize_split(raw_split(name), name, tokenizer, cfg, folder, key)
        files[name], saved[name] = done.files, f"{name}.lengths.npz"
        n_src, n_tgt = compact(done.n_src), compact(done.n_tgt)
        with atomic_open(folder / saved[name], "wb") as f:
            np.savez(f, n_src=n_src, n_tgt=n_tgt, drop=done.drop)
        stats[name] = _split_stats(name, n_src, n_tgt, done.drop, done.control_chars)
        _log_stats(name, stats[name], cfg)
        splits[name], lengths[name] = _open_split(folder, files[name], n_src, n_tgt, done.drop)
    meta = {
        "version": FORMAT_VERSION,
        "checks": {f: file_check(folder / f) for f in [*(x for fs in files.values() for x in fs), *saved.values()]},
        "files": files,
        "lengths": saved,
        "stats": {n: asdict(s) for n, s in stats.items()},
        "tokenizer": {"path": str(tokenizer.path), "sha256": tokenizer.sha256},
        "splits": identities,
    }
    atomic_write(folder / "meta.json", json.dumps(meta, indent=2, sort_keys=True).encode())
    return Prepared(tokenizer, splits, stats, folder, lengths)


def _tokenizer(
    cfg: DataConfig, cache_dir: Path, given: Tokenizer | None, train_identity: dict, train_raw: Callable[[], Path]
) -> Tokenizer:
    """The given model, else the one of ``data.tokenizer.path``, else the cached or newly trained one."""
    if given is not None:
        if given.path is None:  # give it a file: the run folder and stats() refer to one
            given = Tokenizer.from_bytes(given.model_bytes, cache_dir=cache_dir)
        log.info("tokenizer: using the given model %s", given)
        return given
    if cfg.tokenizer.path:
        return _given_tokenizer(cfg.tokenizer.path)
    settings = cfg.tokenizer.train_settings()
    model_settings = {k: v for k, v in settings.items() if k != "num_threads"}  # threads: same model
    key = _digest({"corpus": train_identity, "settings": model_settings, "version": FORMAT_VERSION})
    return load_or_train(
        cache_dir / "tokenizer" / key,
        lambda: training_sentences(train_raw(), cfg.src, cfg.tgt, cfg.tokenizer.input_sentence_size),
        settings,
        about={"source": cfg.source, "name": cfg.name, "train": train_identity},
    )


def _given_tokenizer(path: str) -> Tokenizer:
    """The model of ``data.tokenizer.path`` (special ids checked), as a one-line DataError if unusable."""
    if not Path(path).is_file():
        raise DataError(
            f"data.tokenizer.path={path}: no such file; give a sentencepiece .model file, or null to train one"
        )
    try:
        tokenizer = Tokenizer.load(path)
    except TokenizerError as e:
        raise DataError(f"data.tokenizer.path: {e}") from None
    log.info("tokenizer: using data.tokenizer.path=%s (vocabulary %d)", path, tokenizer.vocab_size)
    return tokenizer


def _split_stats(name: str, n_src: np.ndarray, n_tgt: np.ndarray, drop: np.ndarray, ctrl: int) -> SplitStats:
    kept = drop == 0
    stats = SplitStats(
        sentences=len(drop),
        kept=int(kept.sum()),
        src_tokens=int(n_src.sum(dtype=np.int64, where=kept)),
        tgt_tokens=int(n_tgt.sum(dtype=np.int64, where=kept)),
        control_chars=ctrl,
    )
    if name == "train":
        counts = np.bincount(drop, minlength=len(DROP_REASONS) + 1)
        stats.dropped = {reason: int(counts[i + 1]) for i, reason in enumerate(DROP_REASONS)}
    else:
        stats.empty_kept = int(((n_src == 0) | (n_tgt == 0)).sum())
    return stats


def _open_split(
    folder: Path, files: list[str], n_src: np.ndarray, n_tgt: np.ndarray, drop: np.ndarray
) -> tuple[Dataset, SplitLengths]:
    """The split's rows, memory-mapped and untouched (only the kept ones: an index over the same files when
    rows were dropped), and their tensor lengths."""
    parts = [Dataset.from_file(str(folder / f)) for f in files]
    rows = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    kept = drop == 0
    if not kept.all():  # the index built directly: Dataset.select would make a Python list of it (~60 B a row)
        index = pa.table({"indices": pa.array(np.flatnonzero(kept), type=pa.uint64())})
        fingerprint = _digest([folder.name, files, "kept"])
        rows = Dataset(rows.data, info=rows.info, split=rows.split, indices_table=index, fingerprint=fingerprint)
        n_src, n_tgt = n_src[kept], n_tgt[kept]
    return rows, SplitLengths(src=compact(n_src.astype(np.int32) + 1), tgt=compact(n_tgt.astype(np.int32) + 1))


def _log_stats(name: str, stats: SplitStats, cfg: DataConfig) -> None:
    if stats.control_chars:
        log.info("data: %s: replaced %d control characters by spaces", name, stats.control_chars)
    if name == "train":
        log.info(
            "data: train: kept %d of %d pairs; dropped %s (max_len=%d, max_len_ratio=%g)",
            stats.kept,
            stats.sentences,
            stats.dropped,
            cfg.max_len,
            cfg.max_len_ratio,
        )


def _load_cached(folder: Path, meta: dict, names: list[str], tokenizer: Tokenizer) -> Prepared:
    log.info("data: reusing tokenized splits in %s", folder)
    stats = {name: _stats_from_meta(meta["stats"][name]) for name in names}
    splits, lengths = {}, {}
    for name in names:
        with np.load(folder / meta["lengths"][name]) as saved:
            n_src, n_tgt, drop = saved["n_src"], saved["n_tgt"], saved["drop"]
        splits[name], lengths[name] = _open_split(folder, meta["files"][name], n_src, n_tgt, drop)
    return Prepared(tokenizer, splits, stats, folder, lengths)


def file_check(path: Path, span: int = 1 << 16) -> dict:
    """Size and sha256 of the first and last ``span`` bytes: cheap at any size, catches truncation and most damage."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(span))
        if size > span:
            f.seek(max(span, size - span))
            digest.update(f.read(span))
    return {"size": size, "sha256_ends": digest.hexdigest()}


def _read_meta(folder: Path, names: list[str]) -> dict | None:
    """The cache's meta.json (written last) when it is complete for ``names`` and every file still matches its
    recorded size and checksum; else None (a damaged entry is rebuilt, with a warning)."""
    meta_file = folder / "meta.json"
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
    except ValueError:
        log.warning("data: %s is damaged; tokenizing again", meta_file)
        return None
    files, lengths = meta.get("files", {}), meta.get("lengths", {})  # no lengths: an older layout, redo
    if meta.get("version") != FORMAT_VERSION or any(
        name not in files or name not in lengths or not (folder / lengths[name]).is_file()
        or not all((folder / f).is_file() for f in files[name])
        for name in names
    ):
        return None
    checks = meta.get("checks")
    if checks is None:  # written before checksums were recorded: rebuild once, to have them
        return None
    damaged = [f for f, want in checks.items() if not (folder / f).is_file() or file_check(folder / f) != want]
    if damaged:
        log.warning("data: cached file(s) %s in %s are damaged or truncated; tokenizing again",
                    ", ".join(damaged[:3]), folder)
        for f in [*damaged, "meta.json"]:  # a shard file still there would be reused as it is
            (folder / f).unlink(missing_ok=True)
        return None
    return meta


def _stats_from_meta(raw: dict) -> SplitStats:
    stats = SplitStats(**raw)
    stats.dropped = {r: stats.dropped[r] for r in DROP_REASONS if r in stats.dropped}  # JSON sorted the keys
    return stats


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
