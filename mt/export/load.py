"""Load an exported folder (``format=hf`` or ``format=ctranslate2``) as a translator, without the checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from mt.export import ExportError
from mt.translate import Translator, TranslatorBase, decode_settings

ENGINES = ("auto", "torch", "ctranslate2")
ENGINE_OF = {"hf": "torch", "ctranslate2": "ctranslate2"}  # export format -> the engine that runs it


@dataclass
class Exported:
    """A loaded export: the translator and the export's metadata (data config, decode defaults, scores ...)."""

    translator: TranslatorBase
    config: dict[str, Any]
    format: str  # hf | ctranslate2


def export_format(folder: Path) -> str | None:
    """``hf``, ``ctranslate2`` or None (not an export folder)."""
    from mt.export.ct2 import CT2_METADATA_FILE
    from mt.export.hf import CONFIG_FILE, WEIGHTS_FILE

    if (folder / WEIGHTS_FILE).is_file() and (folder / CONFIG_FILE).is_file():
        return "hf"
    if (folder / "model.bin").is_file() and (folder / CT2_METADATA_FILE).is_file():
        return "ctranslate2"
    return None


def load_exported(path: str | Path, decode_cfg: DictConfig | dict | None, engine: str = "auto",
                  device: str | torch.device = "cpu", precision: str = "32", threads: int = 0) -> Exported:
    """Translator for the export at ``path``; ``engine`` auto picks the engine of the folder's format."""
    folder = Path(path)
    if engine not in ENGINES:
        raise ExportError(f"engine={engine!r} is unknown; use one of {', '.join(ENGINES)}")
    fmt = export_format(folder) if folder.is_dir() else None
    if fmt is None:
        raise ExportError(f"model_dir={path} is not an exported model folder (no model.safetensors + config.json, "
                          "no CTranslate2 model.bin + mt_config.json); write one with python -m mt.export "
                          "ckpt=... out=DIR")
    if engine not in ("auto", ENGINE_OF[fmt]):
        other = "ctranslate2" if engine == "ctranslate2" else "hf"
        raise ExportError(f"model_dir={path} is a format={fmt} export, which engine={engine} cannot run; export "
                          f"the checkpoint with format={other} (python -m mt.export ckpt=... format={other} "
                          "out=DIR) or use engine=auto")
    if fmt == "hf":
        from mt.export.hf import read_hf

        model, tokenizer, config = read_hf(folder)
        decode = decode_settings(config["decode"], decode_cfg)
        translator: TranslatorBase = Translator(model, tokenizer, decode, device, precision)
        return Exported(translator, config, fmt)
    from mt.export.ct2_engine import CT2Translator

    ct2 = CT2Translator.load(folder, decode_cfg, device=str(torch.device(device).type), threads=threads)
    return Exported(ct2, ct2.config, fmt)
