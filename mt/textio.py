"""Reading and writing one-sentence-per-line text safely (strict UTF-8, atomic output)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from mt.errors import MTError, disk_full_names


class InputError(MTError):
    """Unreadable user input: the message names the file and line and says what to do."""


def read_lines(path: str) -> list[str]:
    """Lines of a UTF-8 file (``-`` = stdin) without their line endings (\\n or \\r\\n) or a byte-order mark at the
    start (as corpus files are read); errors name the line."""
    name = "<stdin>" if path == "-" else path
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        if not Path(path).is_file():
            raise InputError(f"input file {path} does not exist")
        data = Path(path).read_bytes()
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for i, raw in enumerate(lines, 1):
        try:
            out.append(raw.decode("utf-8").removesuffix("\r"))
        except UnicodeDecodeError as e:
            raise InputError(f"{name}, line {i}: invalid UTF-8 at byte {e.start} ({raw[max(0, e.start - 10):e.start + 10]!r}); "
                             "convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    return out


def write_lines(path: str, lines: list[str]) -> None:
    """Write lines to ``path`` atomically (temp file + rename), or to stdout for ``-``."""
    text = "".join(line.replace("\n", " ") + "\n" for line in lines)
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    atomic_write_text(path, text)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text atomically: the file at ``path`` is either the old one or the complete new one."""
    with atomic_open(path, "w") as f:
        f.write(text)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success fsync it and rename it over ``path``.

    A kill at any moment leaves either the previous file or the complete new one, never a partial file; an
    exception removes the temporary file. Temporary files are named ``.<name>.<random>.tmp``.
    """
    target = Path(path)
    with disk_full_names(target):  # a full disk is one line naming the file; the previous file stays intact
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, default_file_mode())  # mkstemp creates 0600; give the file the usual permissions
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def default_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
