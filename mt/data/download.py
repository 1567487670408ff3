"""Fetch missing corpus files (Multi30k raw files) from ``{data.url}/{file}``, atomically."""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable
from pathlib import Path

from mt.data.errors import DataError

log = logging.getLogger(__name__)

TIMEOUT_S = 60


def file_url(base_url: str, filename: str) -> str:
    """``{base_url}/{filename}``, e.g. ``.../multi30k/dataset/master/data/task1/raw/train.de.gz``."""
    return f"{base_url.rstrip('/')}/{filename}"


def ensure_files(folder: Path, filenames: Iterable[str], base_url: str) -> list[Path]:
    """Download each of ``filenames`` that is not already in ``folder``; returns the downloaded paths."""
    fetched = []
    for name in filenames:
        dest = folder / name
        if not dest.is_file():
            download(file_url(base_url, name), dest)
            fetched.append(dest)
    return fetched


def download(url: str, dest: Path) -> None:
    """Copy ``url`` to ``dest`` through a temp file + ``os.replace``; a .gz is checked before it lands."""
    log.info("downloading %s -> %s", url, dest)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    hint = "download it by hand, or point paths.data_dir / MT_DATA_DIR at a folder that has it"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out)
        if dest.name.endswith(".gz"):
            _check_gzip(tmp)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"could not download {url} to {dest} ({_reason(e)}); {hint}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _check_gzip(path: Path) -> None:
    with gzip.open(path, "rb") as f:
        while f.read(1 << 20):
            pass


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
    return " ".join(str(reason).split()) or type(e).__name__
