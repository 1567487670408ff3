"""Errors caused by the user's input or config: reported as one line, never as a stack trace."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


class MTError(ValueError):
    """A problem with the user's data, config, checkpoint or input; the message says what to do."""


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """In command-line entry points: print ``error: <message>`` for an :class:`MTError` and exit with 2."""
    try:
        yield
    except MTError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


def require_values(cfg: object) -> None:
    """Raise a one-line :class:`MTError` naming every ``???`` value the user still has to set."""
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise MTError(f"missing required value(s): {', '.join(missing)}; set them on the command line, "
                      f"e.g. {missing[0]}=...")
