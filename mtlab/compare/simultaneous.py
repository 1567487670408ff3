"""BLEU against latency for simultaneous translation: wait-k decoding of the trained runs, one curve per run.

Streaming runs (their model reads the source incrementally, e.g. ``lstm_streaming``, ``transformer_streaming``,
usually trained with ``train.wait_k``) decode with their own encoder state; full-sentence runs are the usual
test-time wait-k baseline, re-encoding the visible prefix each time it grows (``mt.simul``). The point "full" is
the same greedy search reading the whole source first. Results are cached in ``simultaneous.json`` and reused while
the checkpoints and settings stay the same.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mt.api import (
    TranslationDataModule,
    Translator,
    atomic_write_text,
    corpus_score,
    load_checkpoint,
    model_from_checkpoint,
    resolve_device,
    translate_simul,
)
from mtlab.compare.cache import as_json, reusable
from mtlab.compare.runs import RunOutcome

log = logging.getLogger(__name__)


def _settings(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg.simultaneous, resolve=True)


def _evaluation_set(cfg: DictConfig) -> tuple[list[str], list[str]]:
    """The first ``max_sentences`` sentences of ``cfg.simultaneous.split`` and their references."""
    dm = TranslationDataModule(cfg.data, cfg.paths, seed=int(cfg.seed))
    split, n = str(cfg.simultaneous.split), cfg.simultaneous.max_sentences
    sources, refs = dm.sources(split), dm.references(split)
    return (sources, refs) if n is None else (sources[: int(n)], refs[: int(n)])


def simultaneous_curves(cfg: DictConfig, outcomes: dict[str, RunOutcome], out_dir: Path) -> dict:
    """{"settings", "curves": [{preset, streaming, points: [{k, bleu, chrf, al, laal, dal, al_words, ...}]}]}.

    Each run's curve is kept in ``<out_dir>/<preset>.json`` and reused while its checkpoint and the settings stay.
    """
    s = cfg.simultaneous
    presets = [p for p in s.presets if p in outcomes and outcomes[p].checkpoint() is not None]
    if not presets:
        return {}
    evaluation: tuple[list[str], list[str]] | None = None
    curves = []
    for preset in presets:
        ckpt_path = outcomes[preset].checkpoint()
        stamp = as_json({"settings": _settings(cfg), "checkpoint": [str(ckpt_path), ckpt_path.stat().st_mtime]})
        path = out_dir / f"{preset}.json"
        if (earlier := reusable(path, stamp, "stamp", bool(cfg.rerun_bench))) is not None:
            curves.append(earlier["curve"])
            continue
        if evaluation is None:
            evaluation = _evaluation_set(cfg)
        curve = _curve(cfg, preset, outcomes[preset], *evaluation)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"stamp": stamp, "curve": curve}, indent=2) + "\n")
        curves.append(curve)
    n = cfg.simultaneous.max_sentences
    return {"settings": _settings(cfg), "sentences": curves[0]["points"][0]["n"] if curves else n,
            "signature": corpus_score(["."], ["."], tgt_lang=str(cfg.data.tgt)).bleu_signature, "curves": curves}


def _curve(cfg: DictConfig, preset: str, outcome: RunOutcome, sources: list[str], refs: list[str]) -> dict:
    """BLEU and latency of one run at each wait-k lag and reading everything first."""
    s = cfg.simultaneous
    ckpt = load_checkpoint(outcome.checkpoint())
    model, tokenizer = model_from_checkpoint(ckpt, str(outcome.checkpoint()))
    decode = {**ckpt["hyper_parameters"]["decode"], "beam_size": int(s.beam_size), "n_best": 1}
    translator = Translator(model, tokenizer, decode, device=resolve_device(str(cfg.device)))
    points = []
    for k in [*map(int, s.ks), None]:
        start = time.perf_counter()
        # k=None: read everything first (a k longer than any source), same search and latency code
        result = translate_simul(translator, sources, k if k is not None else 10**6, refs)
        score = corpus_score(result.texts, refs, tgt_lang=str(cfg.data.tgt))
        sub, word = result.subword, result.word
        points.append({"k": "full" if k is None else k, "bleu": score.bleu, "chrf": score.chrf,
                       "al": sub.al, "laal": sub.laal, "dal": sub.dal, "al_words": word.al,
                       "laal_words": word.laal, "dal_words": word.dal, "n": len(sources),
                       "seconds": round(time.perf_counter() - start, 1)})
        log.info("simultaneous %s wait-%s: BLEU %.2f AL %.2f (%.0f s)", preset, points[-1]["k"], score.bleu,
                 sub.al if sub.al is not None else float("nan"), points[-1]["seconds"])
    return {"preset": preset, "streaming": model.traits.streaming, "family": model.traits.family,
            "trained_wait_k": outcome.config.get("train", {}).get("wait_k"), "params": model.num_parameters(),
            "points": points}
