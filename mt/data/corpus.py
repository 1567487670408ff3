"""Corpus sources behind one interface: raw sentence pairs of a split as a ``datasets.Dataset``.

Sources (``data.source``): ``multi30k`` and ``text`` read line-aligned files ``{dir}/{stem}.{lang}[.gz]``
(multi30k downloads missing files from ``{data.url}/{file}``); ``hf`` reads a Hugging Face dataset in
translation format (see :mod:`mt.data.hf`). Every split comes out as an Arrow stream file under
``{cache_dir}/raw/`` with the columns ``id`` (line index in the split), ``src``, ``tgt`` (cleaned text, see
:mod:`mt.data.textfiles`) and ``ctrl`` (control characters replaced in the pair), written batch by batch and
reused while its identity holds. Split names are ``train``, ``validation`` and the test set names of
``data.splits.test``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mt.data.arrowfiles import RAW_VERSION, batched_rows, iter_batches, write_batches
from mt.data.config import DataConfig
from mt.data.download import ensure_files
from mt.data.errors import DataError
from mt.data.hf import HFCorpus
from mt.data.textfiles import find_file, missing_file_error, read_parallel


class Corpus(Protocol):
    """What the preparation step needs from a source."""

    def identity(self, split: str) -> dict:
        """JSON-able description of what the split's content depends on (cheap: no full read)."""
        ...

    def load(self, split: str) -> Path:
        """An Arrow stream file of the split's rows ``{"id", "src", "tgt", "ctrl"}``."""
        ...


def split_names(cfg: DataConfig) -> dict[str, str]:
    """Our split name -> the corpus' name for it: train, validation, then each test set under its own name."""
    names = {"train": cfg.splits.train, "validation": cfg.splits.validation}
    for test in cfg.splits.test:
        if test in names:
            raise DataError(
                f"data.splits.test: test set name {test!r} clashes with a train/validation split name"
            )
        names[test] = test
    return names


def eval_split_names(cfg: DataConfig) -> list[str]:
    """The splits a model can be scored on: ``validation``, then each test set."""
    return [name for name in split_names(cfg) if name != "train"]


@dataclass
class EvalText:
    """The text of an evaluation split (validation or a test set), every sentence in the corpus order."""

    sources: list[str]
    references: list[str]


def eval_text(cfg: DataConfig, cache_dir: Path, split: str) -> EvalText:
    """Sources and references of ``validation`` or a test set, read from the corpus alone: nothing tokenized,
    no tokenizer trained, no other split read (what scoring a trained model needs). The text is the same
    cleaned text the training pipeline's ``src_text``/``tgt_text`` columns hold."""
    names = eval_split_names(cfg)
    if split not in names:
        raise DataError(f"unknown evaluation split {split!r}; available: {', '.join(names)}")
    text = EvalText([], [])
    for batch in iter_batches(open_corpus(cfg, cache_dir).load(split), ["src", "tgt"]):
        text.sources += batch.column(0).to_pylist()
        text.references += batch.column(1).to_pylist()
    return text


def open_corpus(cfg: DataConfig, cache_dir: Path) -> Corpus:
    """The corpus that ``data.source`` selects, with the languages checked."""
    names = split_names(cfg)
    if cfg.source == "hf":
        if not cfg.path:
            raise DataError("data.path is not set; give a hub name, a dataset directory or a JSON file")
        return HFCorpus(cfg.path, cfg.config, cfg.src, cfg.tgt, names, cfg.limit, cache_dir, cfg.streaming)
    if cfg.languages is not None:
        for side, lang in (("data.src", cfg.src), ("data.tgt", cfg.tgt)):
            if lang not in cfg.languages:
                raise DataError(
                    f"unknown language {lang!r} ({side}) for {cfg.name}; available: {', '.join(cfg.languages)}"
                )
    if not cfg.dir:
        raise DataError("data.dir is not set; point it at the folder with {split}.{lang}[.gz] files")
    if cfg.source == "multi30k":
        hint = (
            "point paths.data_dir=... (or the MT_DATA_DIR environment variable) at a folder holding multi30k/, "
            "or set data.url to download the files"
        )
    else:
        hint = "point data.dir=... at the folder with the files (or paths.data_dir / MT_DATA_DIR)"
    return TextCorpus(Path(cfg.dir), cfg.src, cfg.tgt, names, cfg.limit, cache_dir, cfg.url, hint)


class TextCorpus:
    """Line-aligned files ``{folder}/{stem}.{lang}[.gz]``; missing ``.gz`` files are fetched when ``url`` is set."""

    def __init__(
        self,
        folder: Path,
        src: str,
        tgt: str,
        split_names: dict[str, str],
        limit: int | None,
        cache_dir: Path,
        url: str | None,
        hint: str,
    ) -> None:
        self.folder, self.src, self.tgt, self.split_names = folder, src, tgt, split_names
        self.limit, self.cache_dir, self.url, self.hint = limit, cache_dir, url, hint

    def paths(self, split: str) -> dict[str, Path]:
        """Language -> file of a split, downloading missing files first when a url is configured."""
        stem = self.split_names[split]
        out = {}
        for lang in (self.src, self.tgt):
            path = find_file(self.folder, stem, lang)
            if path is None and self.url:
                ensure_files(self.folder, [f"{stem}.{lang}.gz"], self.url)
                path = find_file(self.folder, stem, lang)
            if path is None:
                raise missing_file_error(self.folder, stem, lang, self.hint)
            out[lang] = path
        return out

    def identity(self, split: str) -> dict:
        files = {}
        for lang, path in self.paths(split).items():
            st = path.stat()
            files[lang] = [str(path.resolve()), st.st_size, st.st_mtime_ns]
        return {"files": files, "limit": self.limit}

    def load(self, split: str) -> Path:
        paths = self.paths(split)
        identity = self.identity(split)
        key = json.dumps({"identity": identity, "src": self.src, "tgt": self.tgt, "version": RAW_VERSION},
                         sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        out = self.cache_dir / "raw" / f"text-{split}-{self.src}-{self.tgt}-{digest}.arrow"
        if not out.is_file():
            rows = read_parallel(str(paths[self.src]), str(paths[self.tgt]), self.limit)
            write_batches(batched_rows(rows), out)
        return out
