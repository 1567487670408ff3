"""Checks run before any training work, so mistakes surface in seconds, not after an hour."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback as HydraCallback

from mt.errors import MTError, one_line_errors

MIN_FREE_BYTES = 256 * 1024**2  # room for a few checkpoints of the Multi30k presets


def check_output_dir(output_dir: Path, min_free: int = MIN_FREE_BYTES) -> None:
    """The run folder must be creatable, writable and have free space; raise a one-line error otherwise."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".write-test-"):
            pass
    except OSError as e:
        raise MTError(f"output directory {output_dir} is not writable ({e.strerror}); "
                      "choose another with hydra.run.dir=... or paths.output_dir=...") from None
    free = shutil.disk_usage(output_dir).free
    if free < min_free:
        raise MTError(f"output directory {output_dir} has only {free / 1024**2:.0f} MiB free (need at least "
                      f"{min_free / 1024**2:.0f} MiB for checkpoints); free space or choose another folder")


def resolve_ckpt_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """Resume target: ``last`` means this run folder's checkpoints/last.ckpt; a missing file is an error."""
    if not ckpt_path:
        return None
    path = output_dir / "checkpoints" / "last.ckpt" if str(ckpt_path) == "last" else Path(ckpt_path)
    if not path.is_file():
        raise MTError(f"ckpt_path={ckpt_path}: {path} does not exist; to resume, pass an existing "
                                "checkpoint (e.g. <run dir>/checkpoints/last.ckpt), or drop ckpt_path")
    return str(path)


class OutputDirCheck(HydraCallback):
    """Hydra callback (``hydra.callbacks`` in conf/hydra/default.yaml): a ``hydra.run.dir`` that cannot be created
    or written is reported as one line (exit status 2) before the job starts, not as Hydra's own traceback."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        try:
            check_output_dir(Path(str(config.hydra.run.dir)), min_free=0)  # train() checks the free space
        except MTError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)


class ConfigCheck(HydraCallback):
    """Hydra callback (``hydra.callbacks.config_check`` in conf/train.yaml): runs
    :func:`mt.config_check.check_config` before the job starts, so a bad value is one line (exit status 2)
    before any data preparation."""

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        from mt.config_check import check_config

        with one_line_errors():
            check_config(config)
