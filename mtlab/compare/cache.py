"""Results of an expensive comparison stage, kept in a JSON file with the stamp of what they were made from."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def as_json(stamp: dict) -> dict:
    """The stamp as it reads back from JSON (tuples become lists, keys strings), so that it compares equal."""
    return json.loads(json.dumps(stamp))


def reusable(path: Path, stamp: dict, key: str, rerun: bool) -> dict | None:
    """The results in ``path`` when they were made from ``stamp`` (stored under ``key``) and no rerun is asked."""
    if rerun or not path.is_file():
        return None
    earlier = json.loads(path.read_text())
    if earlier.get(key) != stamp:
        return None
    log.info("reusing %s (same checkpoints and settings; rerun_bench=true to measure again)", path)
    return earlier
