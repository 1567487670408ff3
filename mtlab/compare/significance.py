"""Paired bootstrap tests (sacreBLEU) between the compared runs on the same test set, for the quality claims.

Each run's test-set translations (its best checkpoint, its own decoding settings) are made once and kept in
``<out_dir>/<preset>.<set>.txt`` with a stamp; every pair of runs is then tested with
:func:`mt.api.paired_significance` (BLEU and chrF, p-value and 95% confidence intervals).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from omegaconf import DictConfig

from mt.api import TranslationDataModule, Translator, atomic_write_text, paired_significance
from mtlab.compare.cache import as_json, reusable
from mtlab.compare.runs import RunOutcome


def _translations(cfg: DictConfig, preset: str, outcome: RunOutcome, sources: list[str], out_dir: Path) -> list[str]:
    ckpt = outcome.checkpoint()
    stamp = as_json({"checkpoint": [str(ckpt), ckpt.stat().st_mtime], "set": str(cfg.significance.split),
                     "n": len(sources)})
    path = out_dir / f"{preset}.{cfg.significance.split}.json"
    if (earlier := reusable(path, stamp, "stamp", bool(cfg.rerun_bench))) is not None:
        return earlier["hypotheses"]
    hyps = Translator.from_checkpoint(ckpt, device=str(cfg.device)).translate(sources)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"stamp": stamp, "hypotheses": hyps}, ensure_ascii=False) + "\n")
    return hyps


def pairwise_significance(cfg: DictConfig, outcomes: dict[str, RunOutcome], out_dir: Path) -> dict:
    """{"split", "n_samples", "pairs": {"A|B": PairedSignificance as a dict}} over every pair of trained runs."""
    trained = {p: o for p, o in outcomes.items() if o.checkpoint() is not None}
    if len(trained) < 2:
        return {}
    dm = TranslationDataModule(cfg.data, cfg.paths, seed=int(cfg.seed))
    split = str(cfg.significance.split)
    sources, refs = dm.sources(split), dm.references(split)
    hyps = {p: _translations(cfg, p, o, sources, out_dir) for p, o in trained.items()}
    n = int(cfg.significance.n_samples)
    pairs = {f"{a}|{b}": paired_significance(hyps[a], hyps[b], refs, n, tgt_lang=str(cfg.data.tgt)).as_dict()
             for a, b in itertools.combinations(trained, 2)}
    return {"split": split, "n_samples": n, "pairs": pairs}


def p_value(sig: dict, a: str, b: str, metric: str = "BLEU") -> float | None:
    """The paired bootstrap p-value of runs a and b (either order), None when not tested."""
    pair = (sig or {}).get("pairs", {}).get(f"{a}|{b}") or (sig or {}).get("pairs", {}).get(f"{b}|{a}")
    return None if pair is None else pair["metrics"][metric]["p_value"]
