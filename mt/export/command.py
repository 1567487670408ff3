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
    out = export_model(str(cfg.ckpt), cfg.out, cfg.format, cfg.quantization, bool(cfg.overwrite), cfg.run)
    print(f"exported format={cfg.format}" + (f" (quantization {cfg.quantization})" if cfg.quantization else "")
          + f" to {out}")
    return out


def export_model(ckpt: str, out: str | Path, format: str = "hf", quantization: str | None = None,
                 overwrite: bool = False, run: str | None = None) -> Path:
    """Export a checkpoint (a file, a run folder, or best/last of ``run``) to the folder ``out``.

    :param format: hf (safetensors + config.json + spm.model + README.md) or ctranslate2.
    :param quantization: ctranslate2 only: None (fp32) or a CTranslate2 weight type such as int8.
    """
    if format not in FORMATS:
        raise ExportError(f"format={format!r} is unknown; use one of {', '.join(FORMATS)}")
    if quantization is not None and format != "ctranslate2":
        raise ExportError("quantization= applies to format=ctranslate2 only; drop it or add format=ctranslate2")
    src = load_source(ckpt, run)
    out = Path(out)
    if format == "hf":
        from mt.export.hf import write_hf

        write_hf(src, out, overwrite=overwrite)
    else:
        from mt.export.ct2 import write_ctranslate2

        write_ctranslate2(src, out, quantization, overwrite=overwrite)
    log.info("exported %s as format=%s%s to %s", src.checkpoint, format,
             f" (quantization {quantization})" if quantization else "", out)
    return out
