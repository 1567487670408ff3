"""Write an export folder all at once: it is built beside its destination and renamed into place when complete."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mt.export import ExportError
from mt.textio import atomic_open


@contextlib.contextmanager
def staged_folder(out: Path, overwrite: bool) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out``; on success it replaces ``out``.

    A kill or an error leaves ``out`` as it was (a previous export stays intact) and removes the temporary folder.
    An existing non-empty ``out`` is replaced only with ``overwrite``.
    """
    if out.exists() and not out.is_dir():
        raise ExportError(f"out={out} is a file; give a folder path")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"out={out} already holds files; choose a new folder or pass overwrite=true")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as e:
        raise ExportError(f"out={out}: cannot write into {out.parent} ({e.strerror}); choose another folder") from None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    """Write one file of an export (fsync'd, via :func:`mt.textio.atomic_open`)."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
