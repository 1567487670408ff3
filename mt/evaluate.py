"""evaluate(cfg): translate a split or raw text with a checkpoint and score with sacreBLEU."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mt.checkpoint import load_checkpoint
from mt.errors import require_values
from mt.metrics import Score, corpus_score
from mt.textio import InputError, atomic_write_text, read_lines, write_lines
from mt.translate import Translator, model_from_checkpoint

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, Score]:
    """Translate ``cfg.input`` (raw text) or the checkpoint's ``cfg.split``; returns scores by set name."""
    require_values(cfg)
    if cfg.output not in (None, "-"):
        _check_writable(Path(cfg.output))
    ckpt = load_checkpoint(cfg.ckpt)
    model, tokenizer = model_from_checkpoint(ckpt, str(cfg.ckpt))
    device = cfg.device if cfg.device != "auto" else None
    translator = Translator(model, tokenizer, cfg.decode,
                            device=device or ("cuda" if _cuda() else "cpu"), precision=str(cfg.precision))
    out_dir = Path(cfg.paths.output_dir)
    if cfg.input is not None:
        return _translate_text(cfg, translator, out_dir)
    return _translate_splits(cfg, ckpt, translator, out_dir)


def _check_writable(path: Path) -> None:
    """Fail now, not after translating everything, when ``output=`` cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"output={path}: cannot create its folder ({e.strerror}); choose another output file "
                         "or -") from None
    if path.is_dir() or not os.access(path.parent, os.W_OK):
        why = "it is a folder" if path.is_dir() else "its folder is not writable"
        raise InputError(f"output={path} cannot be written ({why}); choose another output file or -")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _references(cfg: DictConfig, n: int, what: str) -> list[list[str]] | None:
    """The ``references`` files, each checked to hold exactly ``n`` lines (one per sentence of ``what``)."""
    if cfg.references is None:
        return None
    paths = [cfg.references] if isinstance(cfg.references, str) else list(cfg.references)
    streams = [read_lines(p) for p in paths]
    for path, stream in zip(paths, streams, strict=True):
        if len(stream) != n:
            raise InputError(f"references {path} has {len(stream)} lines but {what} has {n}; give exactly one "
                             "reference line per source sentence, in the same order")
    return streams


def _translate_text(cfg: DictConfig, translator: Translator, out_dir: Path) -> dict[str, Score]:
    sources = read_lines(cfg.input)
    name = "stdin" if cfg.input == "-" else cfg.input
    refs = _references(cfg, len(sources), f"input {name}")  # checked before the (long) translation
    hyps = translator.translate(sources)
    write_lines(cfg.output or "-", hyps)
    log.info("translated %d lines from %s", len(sources), name)
    if refs is None:
        return {}
    if not sources:
        log.warning("the input is empty: nothing to score")
        return {}
    score = corpus_score(hyps, refs)
    print(score, file=sys.stderr if (cfg.output or "-") == "-" else sys.stdout)
    _write_metrics(out_dir, cfg, {"input": score})
    return {"input": score}


def _translate_splits(cfg: DictConfig, ckpt: dict, translator: Translator, out_dir: Path) -> dict[str, Score]:
    from mt.data import TranslationDataModule

    data_cfg = OmegaConf.merge({"paths": cfg.paths}, {"data": ckpt["hyper_parameters"]["data"]},
                               {"data": cfg.data}).data
    dm = TranslationDataModule(data_cfg, cfg.paths)
    names = list(dm.test_names) if cfg.split == "test" else [cfg.split]
    scores: dict[str, Score] = {}
    for name in names:
        sources = dm.sources(name)
        refs = _references(cfg, len(sources), f"split {name}") or [dm.references(name)]
        hyps = translator.translate(sources)
        out = cfg.output or str(out_dir / f"hyps.{name}.txt")
        write_lines(out, hyps)
        scores[name] = corpus_score(hyps, refs)
        print(f"{name} ({len(hyps)} sentences, beam {cfg.decode.beam_size}): hypotheses in {out}\n{scores[name]}")
    _write_metrics(out_dir, cfg, scores)
    return scores


def _write_metrics(out_dir: Path, cfg: DictConfig, scores: dict[str, Score]) -> None:
    payload = {"ckpt": str(cfg.ckpt), "decode": OmegaConf.to_container(cfg.decode, resolve=True),
               "precision": str(cfg.precision), "scores": {k: s.as_dict() for k, s in scores.items()}}
    atomic_write_text(out_dir / "metrics.json", json.dumps(payload, indent=2) + "\n")
