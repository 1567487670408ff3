"""Strict reading of line-aligned parallel text files, plain or gzip.

Lines are split on ``\\n`` only (never on the other Unicode line breaks ``str.splitlines`` knows, which would
shift the alignment). Per line: a trailing ``\\r`` (CRLF) is removed, a UTF-8 BOM on line 1 is removed, and
every other control character except tab (C0, DEL, C1, U+2028, U+2029) is replaced by a space and counted.
Nothing else is changed: whitespace normalisation is left to the tokenizer. Any defect that would silently
corrupt the corpus (bad UTF-8, truncated gzip, unequal line counts, empty file) raises a one-line DataError.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path
from typing import BinaryIO

from mt.data.errors import DataError

_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def clean_line(text: str) -> tuple[str, int]:
    """Replace control characters (tab excepted) by spaces; returns (text, number replaced)."""
    text, n = _CONTROL.subn(" ", text)
    return text, n


def find_file(folder: Path, stem: str, lang: str) -> Path | None:
    """``{folder}/{stem}.{lang}`` or, failing that, ``{folder}/{stem}.{lang}.gz``."""
    for name in (f"{stem}.{lang}", f"{stem}.{lang}.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def missing_file_error(folder: Path, stem: str, lang: str, hint: str) -> DataError:
    """The error for a split file that is not there, with what is there and how to point elsewhere."""
    found = sorted(p.name for p in folder.glob(f"{stem}.*")) if folder.is_dir() else []
    there = f"; found there: {', '.join(found[:8])}" if found else ""
    return DataError(f"missing file: looked for {folder / f'{stem}.{lang}'}[.gz]{there}; {hint}")


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def read_lines(path: Path, limit: int | None = None) -> Iterator[tuple[str, int]]:
    """Yield (cleaned line, control characters replaced) for the first ``limit`` lines (all if None)."""
    n = 0
    try:
        with _open(path) as f:
            for raw in f:
                if limit is not None and n >= limit:
                    return
                n += 1
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(
                        f"{path}: invalid UTF-8 at line {n} (byte {e.start} of the line: {e.reason}); "
                        "convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8"
                    ) from None
                if text.endswith("\n"):
                    text = text[:-1]
                if text.endswith("\r"):
                    text = text[:-1]
                if n == 1 and text.startswith("\ufeff"):
                    text = text[1:]
                yield clean_line(text)
    except _GZIP_ERRORS as e:
        raise DataError(
            f"{path}: truncated or corrupt gzip after line {n} ({e}); re-download or re-compress the file"
        ) from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if n == 0:
        raise DataError(f"{path}: file is empty; it should hold one sentence a line")


def count_lines(path: Path) -> int:
    """Number of lines (a last line without newline counts)."""
    n, last = 0, b"\n"
    try:
        with _open(path) as f:
            while chunk := f.read(1 << 20):
                n += chunk.count(b"\n")
                last = chunk[-1:]
    except _GZIP_ERRORS as e:
        raise DataError(
            f"{path}: truncated or corrupt gzip ({e}); re-download or re-compress the file"
        ) from None
    return n + (last != b"\n")


def read_parallel(src_path: str, tgt_path: str, limit: int | None) -> Iterator[dict]:
    """Rows ``{"id", "src", "tgt", "ctrl"}`` of two line-aligned files (``ctrl``: control chars replaced).

    With a ``limit`` only the first ``limit`` lines of each file are read, so a line-count difference beyond
    them goes unnoticed (limit is for debugging and tests).
    """
    src, tgt = Path(src_path), Path(tgt_path)
    for i, (s, t) in enumerate(zip_longest(read_lines(src, limit), read_lines(tgt, limit))):
        if s is None or t is None:
            ns, nt = count_lines(src), count_lines(tgt)
            raise DataError(
                f"line counts differ: {src} has {ns} lines but {tgt} has {nt}; "
                "the source and target files must be line-aligned (line N translates line N)"
            )
        yield {"id": i, "src": s[0], "tgt": t[0], "ctrl": s[1] + t[1]}
