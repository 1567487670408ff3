"""Hugging Face datasets in translation format: ``{"translation": {"de": "...", "en": "..."}}``.

``data.path`` is a hub name (with ``data.config``, e.g. wmt14 de-en), a local directory (``save_to_disk``
output, or data files named by split, e.g. ``train.jsonl``), a single JSON/JSONL file (its one split is
"train"), or a file pattern with ``{split}`` (e.g. ``/data/x/{split}.jsonl``) naming one file per split.

With ``data.streaming=true`` a hub dataset (or local JSON/Parquet files) is read as a stream
(``load_dataset(..., streaming=True)``) instead of being downloaded and converted whole: each split is read
once, and only the ``id/src/tgt/ctrl`` rows of the two languages are written to ``{cache_dir}/raw/``, batch by
batch. A streamed split is identified by name, split, languages, limit and local file stats (a stream has no
fingerprint): a changed hub dataset under the same name needs a new ``paths.cache_dir`` (or deleting raw/).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict, Translation

from mt.data.arrowfiles import RAW_VERSION, RECORD_BATCH_ROWS, write_batches
from mt.data.errors import DataError
from mt.data.textfiles import clean_line

log = logging.getLogger(__name__)

_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}


class HFCorpus:
    """A translation-format dataset; :meth:`load` gives the ``id/src/tgt/ctrl`` rows of a split."""

    def __init__(
        self,
        path: str,
        config: str | None,
        src: str,
        tgt: str,
        split_names: dict[str, str],
        limit: int | None,
        cache_dir: Path,
        streaming: bool = False,
    ) -> None:
        """:param split_names: our split name -> the dataset's split name; streaming: see the module doc."""
        self.path, self.config, self.src, self.tgt = path, config, src, tgt
        self.split_names, self.limit, self.cache_dir = split_names, limit, cache_dir
        self.streaming = streaming
        self._dd: DatasetDict | IterableDatasetDict | None = None

    def identity(self, split: str) -> dict:
        """What the split's content depends on (for cache keys); symmetric in the two languages."""
        ds = self._split(split)
        if isinstance(ds, IterableDataset):
            return {
                "path": self.path,
                "config": self.config,
                "split": self.split_names[split],
                "streaming": True,
                "files": _stat_local(self.path, sorted(set(self.split_names.values()))),
                "languages": sorted([self.src, self.tgt]),
                "limit": self.limit,
            }
        return {
            "path": self.path,
            "config": self.config,
            "split": self.split_names[split],
            "fingerprint": ds._fingerprint,
            "rows": ds.num_rows,
            "files": _stat_local(self.path, sorted(set(self.split_names.values()))),
            "languages": sorted([self.src, self.tgt]),
            "limit": self.limit,
        }

    def load(self, split: str) -> Path:
        """Arrow file of the rows ``{"id", "src", "tgt", "ctrl"}`` of a split (first ``limit`` rows), cached
        under cache_dir."""
        ds = self._split(split)
        key = {"identity": self.identity(split), "src": self.src, "tgt": self.tgt, "version": RAW_VERSION}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        out = self.cache_dir / "raw" / f"hf-{split}-{self.src}-{self.tgt}-{digest}.arrow"
        out.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(ds, IterableDataset):
            return self._write_stream(ds, split, out)
        if self.limit is not None:
            ds = ds.select(range(min(self.limit, ds.num_rows)))
        ds.map(
            _from_translation,
            batched=True,
            with_indices=True,
            fn_kwargs={"src": self.src, "tgt": self.tgt},
            remove_columns=ds.column_names,
            cache_file_name=str(out),
            batch_size=RECORD_BATCH_ROWS,
            writer_batch_size=RECORD_BATCH_ROWS,
            new_fingerprint=digest,
            desc=f"reading {split}",
        )
        return out

    # -- internals ----------------------------------------------------------------------------------------
    def _write_stream(self, ds: IterableDataset, split: str, out: Path) -> Path:
        """Read a streamed split once into ``out`` (rows id/src/tgt/ctrl), batch by batch; reused when there."""
        if out.is_file():
            return out
        if self.limit is not None:
            ds = ds.take(self.limit)
        log.info("streaming %s split %s into %s", self.path, self.split_names[split], out)
        try:
            write_batches(self._stream_batches(ds), out)
        except DataError:
            raise
        except Exception as e:  # network and format errors surface while iterating a stream
            msg = " ".join(str(e).split())[:300]
            raise DataError(
                f"could not stream {self.path!r} split {self.split_names[split]!r}: {type(e).__name__}: {msg}; "
                "check data.path / data.config and the connection, or set data.streaming=false"
            ) from None
        return out

    def _stream_batches(self, ds: IterableDataset) -> Iterator[dict[str, list]]:
        n = 0
        for batch in ds.iter(batch_size=RECORD_BATCH_ROWS):
            size = len(batch["translation"])
            yield _from_translation(batch, list(range(n, n + size)), self.src, self.tgt)
            n += size

    def _split(self, split: str) -> Dataset | IterableDataset:
        dd = self._load()
        name = self.split_names[split]
        if name not in dd:
            raise DataError(
                f"{self.path}: no split {name!r} (for {split}); available: {', '.join(dd)}; "
                f"set data.splits.* to the dataset's split names"
            )
        ds = dd[name]
        langs = _languages(ds, self.path)
        for side, lang in (("data.src", self.src), ("data.tgt", self.tgt)):
            if lang not in langs:
                raise DataError(
                    f"{self.path}: language {lang!r} ({side}) is not in the dataset; available: {', '.join(langs)}"
                )
        return ds

    def _load(self) -> DatasetDict | IterableDatasetDict:
        if self._dd is None:
            self._dd = self._load_uncached()
        return self._dd

    def _load_uncached(self) -> DatasetDict | IterableDatasetDict:
        path, p = self.path, Path(self.path)
        cache = str(self.cache_dir / "datasets")
        stream = {"streaming": True} if self.streaming else {}
        try:
            if "{split}" in path:
                files = {n: path.format(split=n) for n in sorted(set(self.split_names.values()))}
                for f in files.values():
                    if not Path(f).is_file():
                        raise DataError(
                            f"missing file: {f} (from data.path={path}); create it or fix data.path"
                        )
                return datasets.load_dataset(_builder(path), data_files=files, cache_dir=cache, **stream)
            if p.is_file():
                return datasets.load_dataset(_builder(path), data_files={"train": path}, cache_dir=cache, **stream)
            if p.is_dir() and ((p / "dataset_dict.json").is_file() or (p / "state.json").is_file()):
                loaded = datasets.load_from_disk(path)  # already local Arrow, memory-mapped: nothing to stream
                return loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})
            return datasets.load_dataset(path, self.config, cache_dir=cache, **stream)
        except DataError:
            raise
        except Exception as e:  # datasets raises many types (FileNotFoundError, ConnectionError, ValueError)
            msg = " ".join(str(e).split())[:300]
            raise DataError(
                f"could not load Hugging Face dataset {path!r} (config {self.config!r}): {type(e).__name__}: "
                f"{msg}; check data.path / data.config (offline runs need the dataset in the datasets cache)"
            ) from None


def _builder(path: str) -> str:
    name = path[:-3] if path.endswith(".gz") else path
    builder = _FILE_BUILDERS.get(Path(name).suffix)
    if builder is None:
        raise DataError(f"{path}: unsupported file type; use .json, .jsonl (optionally .gz) or .parquet")
    return builder


def _languages(ds: Dataset | IterableDataset, path: str) -> list[str]:
    if ds.features is None:  # a stream whose features are unknown until read: look at its first row
        first = next(iter(ds.take(1)), {})
        pair = first.get("translation")
        if isinstance(pair, dict):
            return list(pair)
        raise DataError(
            f"{path}: no 'translation' column of language -> text (first row has {', '.join(first) or 'nothing'}); "
            'expected rows like {"translation": {"de": "...", "en": "..."}}'
        )
    feature = ds.features.get("translation")
    if isinstance(feature, Translation):
        return list(feature.languages)
    if isinstance(feature, dict):
        return list(feature)
    raise DataError(
        f"{path}: no 'translation' column of language -> text (columns: {', '.join(ds.column_names)}); "
        'expected rows like {"translation": {"de": "...", "en": "..."}}'
    )


def _from_translation(batch: dict, indices: list[int], src: str, tgt: str) -> dict:
    out: dict[str, list] = {"id": indices, "src": [], "tgt": [], "ctrl": []}
    for pair in batch["translation"]:
        s, ns = clean_line(pair.get(src) or "")
        t, nt = clean_line(pair.get(tgt) or "")
        out["src"].append(s)
        out["tgt"].append(t)
        out["ctrl"].append(ns + nt)
    return out


def _stat_local(path: str, split_names: list[str]) -> list:
    """[file, size, mtime] of the local files behind ``path`` (empty for a hub name)."""
    p = Path(path)
    if "{split}" in path:
        files = [Path(path.format(split=n)) for n in split_names]
    elif p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
    else:
        files = [p]
    return [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files if f.is_file()]
