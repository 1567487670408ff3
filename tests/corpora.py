"""Small synthetic corpora written to disk: shared by the data and bad-input tests."""

from __future__ import annotations

import gzip
from pathlib import Path

WORDS = "dog cat man woman child ball park street water red blue green runs jumps sits plays".split()


def sentences(n: int, lang: str, offset: int = 0) -> list[str]:
    """Deterministic toy sentences; line i of every language 'translates' line i."""
    return [
        f"{lang} {WORDS[(i + offset) % len(WORDS)]} {WORDS[(3 * i + offset) % len(WORDS)]} {i}"
        for i in range(n)
    ]


def write(path: Path, lines: list[str] | bytes, gz: bool = False, eol: str = "\n") -> Path:
    data = lines if isinstance(lines, bytes) else "".join(line + eol for line in lines).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def text_corpus(folder: Path, n: int = 40, langs: tuple[str, str] = ("xx", "yy"), gz: bool = False) -> Path:
    """A clean corpus for data=text: {train,valid,test}.{xx,yy}."""
    for split, size in (("train", n), ("valid", 8), ("test", 6)):
        for lang in langs:
            write(folder / f"{split}.{lang}", sentences(size, lang), gz=gz)
    return folder
