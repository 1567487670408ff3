"""Which of a tool's own command-line overrides it hands on to the train.py runs it starts."""

from __future__ import annotations


def forwarded_overrides(task_overrides: list[str], prefixes: tuple[str, ...] = ("data", "paths", "decode")) -> list[str]:
    """The overrides (as typed) whose key starts with one of ``prefixes``; never ``paths.output_dir``."""
    out = []
    for o in task_overrides:
        key = o.lstrip("+~").split("=", 1)[0]
        if key.split(".", 1)[0] in prefixes and key != "paths.output_dir":
            out.append(o)
    return out
