"""Errors caused by the user's input or config: reported as one line, never as a stack trace."""

from __future__ import annotations

import contextlib
import errno
import sys
from collections.abc import Iterator
from pathlib import Path

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # "no space left on device", "disk quota exceeded"


class MTError(ValueError):
    """A problem with the user's data, config, checkpoint or input; the message says what to do."""


class ConfigError(MTError):
    """A config value of the wrong type or out of range; the message names the key, the value and what is
    allowed."""


class DiskFullError(MTError):
    """A write that ran out of disk space (or quota); the message names the file."""


def disk_full_message(path: str | Path | None) -> str:
    """One line for a full disk, naming ``path`` when it is known."""
    where = f"while writing {path}" if path else "while writing a file"
    return (f"no space left on device {where}; free some space or write elsewhere (hydra.run.dir=..., "
            "paths.cache_dir=...); a training run resumes with ckpt_path=<run dir>/checkpoints/last.ckpt")


@contextlib.contextmanager
def disk_full_names(path: str | Path) -> Iterator[None]:
    """Around a write of ``path``: a full disk (ENOSPC/EDQUOT, which never carries a file name when ``write``,
    ``flush`` or ``fsync`` hit it) becomes a one-line :class:`DiskFullError` naming ``path``."""
    try:
        yield
    except OSError as e:
        if e.errno in DISK_FULL:
            raise DiskFullError(disk_full_message(path)) from None
        raise


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """In command-line entry points: print ``error: <message>`` for an :class:`MTError` or a full disk, and
    exit with 2."""
    try:
        yield
    except MTError as e:
        _exit_with(str(e))
    except OSError as e:
        if e.errno not in DISK_FULL:
            raise
        _exit_with(disk_full_message(e.filename))


def _exit_with(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def require_values(cfg: object) -> None:
    """Raise a one-line :class:`MTError` naming every ``???`` value the user still has to set."""
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise MTError(f"missing required value(s): {', '.join(missing)}; set them on the command line, "
                      f"e.g. {missing[0]}=...")
