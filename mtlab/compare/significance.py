"""Paired bootstrap tests (sacreBLEU) between the compared runs on the same test set, for the quality claims.

Each run's test-set translations (its best checkpoint, its own decoding settings) are made once and kept in
``<out_dir>/<run>.<set>.json`` with a stamp; every pair of presets is then tested with
:func:`mt.api.paired_significance` (BLEU and chrF, p-value and 95% confidence intervals): their first-seed runs
(``pairs``), and with several seeds each seed's pair of runs too (``per_seed``). Outside systems (``peers``) that
left translations of the same test set are tested against each preset's first-seed run (``peers``).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from mt.api import (
    MTError,
    TranslationDataModule,
    Translator,
    atomic_write_text,
    paired_significance,
    read_lines,
)
from mtlab.compare.cache import as_json, reusable
from mtlab.compare.runs import RunOutcome


def _translations(cfg: DictConfig, outcome: RunOutcome, sources: list[str], out_dir: Path) -> list[str]:
    ckpt = outcome.checkpoint()
    stamp = as_json({"checkpoint": [str(ckpt), ckpt.stat().st_mtime], "set": str(cfg.significance.split),
                     "n": len(sources)})
    path = out_dir / f"{outcome.name}.{cfg.significance.split}.json"
    if (earlier := reusable(path, stamp, "stamp", bool(cfg.rerun_bench))) is not None:
        return earlier["hypotheses"]
    hyps = Translator.from_checkpoint(ckpt, device=str(cfg.device)).translate(sources)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"stamp": stamp, "hypotheses": hyps}, ensure_ascii=False) + "\n")
    return hyps


def peer_hypotheses(peers: dict[str, dict], split: str, n_sentences: int) -> dict[str, list[str]]:
    """Each peer's translations of ``split`` (peers without them are left out), checked to be one per sentence."""
    out = {}
    for name, peer in peers.items():
        if (path := peer["hypotheses"].get(split)) is None:
            continue
        lines = read_lines(path)
        if len(lines) != n_sentences:
            raise MTError(f"peers.{name}: {path} has {len(lines)} lines but {split} has {n_sentences} sentences; "
                          f"test the peer on the same data (run.sh ... test:{peer['model']})")
        out[name] = lines
    return out


def pairwise_significance(cfg: DictConfig, every_seed: dict[str, list[RunOutcome]], out_dir: Path,
                          peers: dict[str, dict] | None = None) -> dict:
    """{"split", "n_samples", "pairs": {"A|B": PairedSignificance as a dict}, "per_seed": {"A|B": [one per seed]},
    "peers": {"preset|peer": ...}} over every pair of presets whose runs were all trained, and every such preset
    against every peer with translations of the split; ``every_seed``: preset -> its runs, first seed first."""
    trained = {p: runs for p, runs in every_seed.items() if all(o.checkpoint() is not None for o in runs)}
    split = str(cfg.significance.split)
    with_peers = any(split in p["hypotheses"] for p in (peers or {}).values())
    if not trained or (len(trained) < 2 and not with_peers):
        return {}
    dm = TranslationDataModule(cfg.data, cfg.paths, seed=int(cfg.seed))
    sources, refs = dm.sources(split), dm.references(split)
    others = peer_hypotheses(peers or {}, split, len(sources))
    hyps = {p: [_translations(cfg, o, sources, out_dir) for o in runs] for p, runs in trained.items()}
    n = int(cfg.significance.n_samples)

    def test(a: list[str], b: list[str]) -> dict:
        return paired_significance(a, b, refs, n, tgt_lang=str(cfg.data.tgt)).as_dict()

    pairs = {f"{a}|{b}": test(hyps[a][0], hyps[b][0]) for a, b in itertools.combinations(trained, 2)}
    out = {"split": split, "n_samples": n, "pairs": pairs}
    if others:
        out["peers"] = {f"{p}|{name}": test(hyps[p][0], lines) for p in trained for name, lines in others.items()}
    if any(len(h) > 1 for h in hyps.values()):
        out["per_seed"] = {f"{a}|{b}": [pairs[f"{a}|{b}"]] + [test(x, y) for x, y in zip(hyps[a][1:], hyps[b][1:],
                                                                                      strict=True)]
                           for a, b in itertools.combinations(trained, 2)}  # every preset ran the same seeds
    return out


@dataclass(frozen=True)
class SeedTest:
    """One paired bootstrap test of presets a and b, oriented to (a, b) whichever order it was run in."""

    p_value: float
    score_a: float
    score_b: float


def _oriented(test: dict, flipped: bool, metric: str) -> SeedTest:
    m = test["metrics"][metric]
    a, b = (m["b"], m["a"]) if flipped else (m["a"], m["b"])
    return SeedTest(m["p_value"], a["score"], b["score"])


def seed_tests(sig: dict, a: str, b: str, metric: str = "BLEU") -> list[SeedTest]:
    """The paired tests of presets a and b, one per seed (the first seed's alone when only one seed ran)."""
    per_seed, pairs = (sig or {}).get("per_seed", {}), (sig or {}).get("pairs", {})
    for key, flipped in ((f"{a}|{b}", False), (f"{b}|{a}", True)):
        tests = per_seed.get(key) or ([pairs[key]] if key in pairs else [])
        if tests:
            return [_oriented(t, flipped, metric) for t in tests]
    return []
