"""What every export format writes: the model, its tokenizer and the metadata (``config.json``) of a checkpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sentencepiece as spm

import mt
from mt.batch import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from mt.checkpoint import load_checkpoint
from mt.models.base import Seq2Seq
from mt.tokenizer import Tokenizer
from mt.translate import model_from_checkpoint, resolve_checkpoint

FORMAT_VERSION = 1
TOKENIZER_FILE = "spm.model"
SPECIAL_IDS = {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID}


@dataclass
class ExportSource:
    """A trained model ready to export: the network, its tokenizer and the JSON metadata that travels with it."""

    model: Seq2Seq
    tokenizer: Tokenizer
    config: dict[str, Any]  # see :func:`export_config`
    checkpoint: Path


def token_pieces(tokenizer: Tokenizer) -> list[str]:
    """The vocabulary as sentencepiece pieces, index = token id."""
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(tokenizer.model_bytes)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def load_source(ckpt: str, run: str | None = None) -> ExportSource:
    """The model, tokenizer and metadata of ``ckpt`` (a file, a run folder, or best/last of ``run``)."""
    path = resolve_checkpoint(ckpt, run)
    data = load_checkpoint(path)
    model, tokenizer = model_from_checkpoint(data, str(path))
    return ExportSource(model, tokenizer, export_config(data, model, tokenizer, path), path)


def export_config(ckpt: dict, model: Seq2Seq, tokenizer: Tokenizer, path: Path) -> dict[str, Any]:
    """The ``config.json`` of an export: everything needed to rebuild, run and describe the model.

    Keys: format_version, project {name, version}, model (the model config, ``_target_`` included),
    vocab_size, num_parameters, family, special_ids, special_tokens, max_source_len, max_target_len,
    tokenizer {file, sha256}, decode (the decode defaults it was trained with), data (the data config, with the
    languages src/tgt), checkpoint {file, global_step, epoch}, scores (see :func:`recorded_scores`).
    """
    hp = ckpt["hyper_parameters"]
    pieces = token_pieces(tokenizer)
    return {
        "format_version": FORMAT_VERSION,
        "project": {"name": "mt", "version": mt.__version__},
        "model": hp["model"],
        "vocab_size": tokenizer.vocab_size,
        "num_parameters": model.num_parameters(),
        "family": model.traits.family,
        "special_ids": SPECIAL_IDS,
        "special_tokens": {name: pieces[i] for name, i in SPECIAL_IDS.items()},
        "max_source_len": model.max_source_len,
        "max_target_len": model.max_target_len,
        "tokenizer": {"file": TOKENIZER_FILE, "sha256": tokenizer.sha256},
        "decode": hp["decode"],
        "data": hp["data"],
        "checkpoint": {"file": path.name, "global_step": ckpt.get("global_step"), "epoch": ckpt.get("epoch")},
        "scores": recorded_scores(path),
    }


def recorded_scores(path: Path) -> dict[str, Any]:
    """Scores the training run recorded for this very checkpoint: when ``<run>/results.json`` names it as the best
    checkpoint, its validation BLEU and the test scores (BLEU/chrF with sacreBLEU signatures); else ``{}``."""
    run = path.parent.parent
    try:
        results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    best = results.get("best_checkpoint") if isinstance(results, dict) else None
    if not best or Path(best).name != path.name or not _same_file(run / "checkpoints" / path.name, path):
        return {}
    return {"source": "results.json of the training run (this is its best checkpoint)",
            "validation_bleu": results.get("best_bleu"), "test": results.get("test") or {}}


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
