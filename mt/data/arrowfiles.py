"""Arrow stream files written and read in bounded memory (raw splits, passes over them).

Why not read them through a memory map: every page of a mapped file that a process touches stays resident
(and counts in its RSS) while the file is mapped, and merely opening a mapped Arrow *stream* touches the header
of every record batch (the kernel maps ~64 kB around each touched page): with datasets' default 1,000-row
batches that is ~45 MB per million rows before a single row is read. So passes over whole splits (tokenizer
sample, tokenization) read the file with plain reads, one record batch at a time, and every file written here
or by the tokenization has ``RECORD_BATCH_ROWS``-row batches, so that mapping it for the loaders is cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa

RECORD_BATCH_ROWS = 10_000
RAW_VERSION = 1  # part of every raw file's cache key: bump when the cleaning of raw rows (textfiles, hf) changes
RAW_SCHEMA = pa.schema([("id", pa.int64()), ("src", pa.string()), ("tgt", pa.string()), ("ctrl", pa.int64())])


def write_batches(batches: Iterable[dict[str, list]], out: Path, schema: pa.Schema = RAW_SCHEMA) -> int:
    """Write column batches (``{name: values}``) to the Arrow stream file ``out`` atomically; returns the rows.

    Nothing is left behind when ``batches`` raises (e.g. a DataError about the input).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    rows = 0
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for batch in batches:
                writer.write_batch(pa.RecordBatch.from_pydict(batch, schema=schema))
                rows += len(next(iter(batch.values()), []))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return rows


def batched_rows(rows: Iterable[dict], size: int = RECORD_BATCH_ROWS) -> Iterator[dict[str, list]]:
    """Rows (dicts) grouped into column batches of ``size`` rows."""
    batch: dict[str, list] = {}
    n = 0
    for row in rows:
        for key, value in row.items():
            batch.setdefault(key, []).append(value)
        n += 1
        if n == size:
            yield batch
            batch, n = {}, 0
    if n:
        yield batch


def iter_batches(path: str | Path, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The record batches of an Arrow stream file, read (not mapped) one at a time."""
    with pa.OSFile(str(path), "rb") as source:
        for batch in pa.ipc.open_stream(source):
            yield batch if columns is None else batch.select(columns)


def iter_column(path: str | Path, name: str) -> Iterator[list]:
    """One column of an Arrow stream file as Python lists, batch by batch."""
    for batch in iter_batches(path, [name]):
        yield batch.column(0).to_pylist()


def iter_shards(path: str | Path, size: int) -> Iterator[tuple[int, int, pa.Table]]:
    """``(start, end, rows start..end-1)`` of an Arrow stream file in tables of ``size`` rows (the last may be
    smaller; one empty table for an empty file), each built from plain reads."""
    pending: list[pa.RecordBatch] = []
    have = start = 0
    schema = None
    for batch in iter_batches(path):
        schema = batch.schema
        pending.append(batch)
        have += batch.num_rows
        while have >= size:
            table = pa.Table.from_batches(pending, schema)
            yield start, start + size, table.slice(0, size)
            rest = table.slice(size)
            pending, have, start = rest.to_batches(), rest.num_rows, start + size
    if have or start == 0:
        if schema is None:
            with pa.OSFile(str(path), "rb") as source:
                schema = pa.ipc.open_stream(source).schema
        yield start, start + have, pa.Table.from_batches(pending, schema)
