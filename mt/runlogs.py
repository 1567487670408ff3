"""Reading a training run's CSV logs (``<run>/csv/version_N/metrics.csv``, one version per (re)start)."""

from __future__ import annotations

import csv
from pathlib import Path


def csv_versions(run_dir: Path) -> list[Path]:
    """The CSV logger's version folders of a run in numeric order (version_10 after version_9)."""
    found = [p for p in (Path(run_dir) / "csv").glob("version_*") if p.name.split("_", 1)[1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("_", 1)[1]))


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    """Every row of every version's metrics.csv, in logging order across restarts (empty cells dropped)."""
    rows = []
    for version in csv_versions(run_dir):
        path = version / "metrics.csv"
        if path.is_file():
            with open(path, newline="") as f:
                rows += [{k: v for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
    return rows
