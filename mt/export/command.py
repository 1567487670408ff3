"""export(cfg): the plain function behind ``python -m mt.export`` (conf/export.yaml)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from mt.errors import require_values
from mt.export import ExportError
from mt.export.source import load_source

log = logging.getLogger(__name__)
FORMATS = ("hf", "ctranslate2")


def export(cfg: DictConfig) -> Path:
    """Export ``cfg.ckpt`` (a file, a run folder, or best/last of ``cfg.run``) to ``cfg.out`` in ``cfg.format``."""
    require_values(cfg)
    if cfg.format not in FORMATS:
        raise ExportError(f"format={cfg.format!r} is unknown; use one of {', '.join(FORMATS)}")
    if cfg.quantization is not None and cfg.format != "ctranslate2":
        raise ExportError("quantization= applies to format=ctranslate2 only; drop it or add format=ctranslate2")
    src = load_source(str(cfg.ckpt), cfg.run)
    out = Path(cfg.out)
    if cfg.format == "hf":
        from mt.export.hf import write_hf

        write_hf(src, out, overwrite=bool(cfg.overwrite))
    else:
        from mt.export.ct2 import write_ctranslate2

        write_ctranslate2(src, out, cfg.quantization, overwrite=bool(cfg.overwrite))
    print(f"exported {src.checkpoint} as format={cfg.format}"
          + (f" (quantization {cfg.quantization})" if cfg.quantization else "") + f" to {out}")
    return out
