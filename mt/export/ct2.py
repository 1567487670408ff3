"""``format=ctranslate2``: convert a model with CTranslate2's Python spec API (no OpenNMT/fairseq converter).

The model describes its own structure (:func:`mt.models.ctranslate2_spec.ctranslate2_spec`); this module adds
the vocabulary and special tokens, optionally quantizes, and writes CTranslate2's files plus this project's
metadata (``mt_config.json``, same content as the ``config.json`` of ``format=hf``), the sentencepiece model and
a model card. Sources are given to CTranslate2 with their EOS already appended (as the project's data pipeline
does), so ``add_source_eos`` stays off.
"""

from __future__ import annotations

import json
from pathlib import Path

from mt.export import ExportError
from mt.export.card import model_card
from mt.export.ct2_engine import import_ctranslate2
from mt.export.folder import staged_folder, write_bytes
from mt.export.source import ExportSource, token_pieces

CT2_METADATA_FILE = "mt_config.json"  # CTranslate2 writes its own config.json
QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16",
                 "float32")


def write_ctranslate2(src: ExportSource, out: Path, quantization: str | None = None,
                      overwrite: bool = False) -> Path:
    """Convert ``src`` into a CTranslate2 model folder at ``out`` (atomically: complete or not there)."""
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ExportError(f"quantization={quantization!r} is unknown; use null (keep fp32) or one of "
                          f"{', '.join(QUANTIZATIONS)}")
    import_ctranslate2()
    from mt.models.ctranslate2_spec import ctranslate2_spec

    pieces = token_pieces(src.tokenizer)
    spec = ctranslate2_spec(src.model)  # ExportError when the architecture has no CTranslate2 equivalent
    special = src.config["special_tokens"]
    spec.register_source_vocabulary(pieces)
    spec.register_target_vocabulary(pieces)
    spec.config.unk_token, spec.config.bos_token, spec.config.eos_token = special["unk"], special["bos"], \
        special["eos"]
    spec.config.decoder_start_token = special["bos"]
    spec.config.add_source_bos, spec.config.add_source_eos = False, False
    spec.validate()
    spec.optimize(quantization=quantization)
    config = dict(src.config, ctranslate2={"quantization": quantization or "float32"})
    with staged_folder(out, overwrite) as tmp:
        spec.save(str(tmp))
        write_bytes(tmp / CT2_METADATA_FILE, (json.dumps(config, indent=2) + "\n").encode())
        write_bytes(tmp / config["tokenizer"]["file"], src.tokenizer.model_bytes)
        write_bytes(tmp / "README.md", model_card(config, "ctranslate2", quantization).encode())
    return out
