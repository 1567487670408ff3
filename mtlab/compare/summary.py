"""The comparison's numbers, per run and across runs, as plain data (results.json holds all of them)."""

from __future__ import annotations

import statistics

from mt.api import short_precision
from mtlab.compare.runs import RunOutcome


def time_to_bleu(val: list[dict], levels: list[float]) -> dict[str, float | None]:
    """Per level, the wall-clock seconds (val/elapsed_s) of the first validation at or above it; None: never."""
    out: dict[str, float | None] = {}
    for level in levels:
        hit = next((r for r in val if r["bleu"] >= level and r["elapsed_s"] is not None), None)
        out[f"{level:g}"] = None if hit is None else hit["elapsed_s"]
    return out


def _bench_rows(bench: dict, preset: str) -> list[dict]:
    return [r for r in bench.get("throughput", {}).get("rows", []) if r["preset"] == preset]


def _curve(o: RunOutcome) -> list[dict]:
    """A run's validation BLEU against wall-clock seconds and epoch (what the time plot draws)."""
    return [{"elapsed_s": v["elapsed_s"], "bleu": v["bleu"], "epoch": v["epoch"]} for v in o.val]


def seed_scores(runs: list[RunOutcome]) -> dict | None:
    """Test BLEU/chrF of one preset over its seeds: per seed, mean and sample std per test set; None for one run."""
    if len(runs) < 2:
        return None
    sets = sorted(set.intersection(*(set(o.results.get("test", {})) for o in runs)))
    out: dict = {"seeds": [o.seed for o in runs], "runs": [o.name for o in runs],
                 "stopped_by": [o.results.get("stopped_by") or "n/a" for o in runs],
                 "epochs": [o.results.get("epochs") for o in runs],
                 "val_curves": [_curve(o) for o in runs], "test": {}}
    for name in sets:
        per = {m: [float(o.results["test"][name][m]) for o in runs] for m in ("bleu", "chrf")}
        out["test"][name] = {**per, **{f"{m}_{stat}": f(v) for m, v in per.items()
                                       for stat, f in (("mean", statistics.mean), ("std", statistics.stdev))}}
    return out


def summarize_run(o: RunOutcome, bench: dict, levels: list[float], seeds: list[RunOutcome] | None = None) -> dict:
    """Everything the report says about one run; ``seeds``: every run of its preset (first seed first)."""
    r = o.results
    trainer = o.config.get("trainer", {})
    best = max(o.val, key=lambda v: v["bleu"]) if o.val else None
    fit_seconds, fit_source = r.get("fit_seconds"), "results.json"
    if fit_seconds is None:
        elapsed = [v["elapsed_s"] for v in o.val if v["elapsed_s"] is not None]
        fit_seconds, fit_source = (elapsed[-1], "last val/elapsed_s") if elapsed else (None, "n/a")
    trained_in = str(r.get("precision") or trainer.get("precision", "32"))  # results.json: auto resolved
    precision = short_precision(trained_in)
    rows = _bench_rows(bench, o.preset)
    real = [x for x in rows if x["source"] == "real" and x["precision"] == precision]
    decoding = bench.get("decoding", {})
    return {
        "preset": o.preset,
        "model": o.model_target.rsplit(".", 1)[-1],
        "family": r.get("model_family"),
        "wait_k": (o.config.get("train") or {}).get("wait_k"),  # trained for simultaneous translation
        "run_dir": str(o.run_dir),
        "checkpoint": None if o.checkpoint() is None else str(o.checkpoint()),
        "params": r.get("num_parameters"),
        "val_best": None if best is None else dict(best),
        "val_curve": _curve(o),
        "test": r.get("test", {}),
        "test_averaged": r.get("test_averaged", {}),  # average_best=true: the averaged best-k checkpoint's
        "epochs": r.get("epochs"),
        "stopped_by": r.get("stopped_by") or "n/a",  # results.json from before the field: n/a
        "global_step": r.get("global_step"),
        "fit_seconds": fit_seconds,
        "fit_seconds_source": fit_source,
        "peak_memory_mb": r.get("peak_memory_mb"),
        "train_tok_s_median": statistics.median(o.train_tok_s) if o.train_tok_s else None,
        "train_precision": trained_in,
        "bench_precision": precision,
        "bench_tok_s_pipeline": real[0]["pipeline_tok_s"] if real else None,
        "bench_tok_s_bare": real[0]["bare_tok_s"] if real else None,
        "time_to_bleu": time_to_bleu(o.val, levels),
        "budget": {**{k: trainer.get(k) for k in ("max_epochs", "max_time", "accelerator", "devices")},
                   "precision": trained_in},
        "decoding": [s for s in decoding.get("speed", []) if s["preset"] == o.preset],
        "batched_vs_single": next((s for s in decoding.get("batched_vs_single", []) if s["preset"] == o.preset),
                                  None),
        "trained_weights_in_decoding": decoding.get("trained", {}).get(o.preset),
        "seeds": seed_scores(seeds or [o]),  # None: one seed
    }


def roles(runs: dict[str, dict]) -> dict[str, str]:
    """{"transformer": preset, "recurrent": preset} from the families the models declared, one of each."""
    full = {p: s for p, s in runs.items() if s.get("wait_k") is None} or runs  # full-sentence runs first
    transformers = [p for p, s in full.items() if s["family"] == "transformer"]
    recurrent = [p for p, s in full.items() if s["family"] == "recurrent"]
    if len(transformers) == 1 and len(recurrent) == 1:
        return {"transformer": transformers[0], "recurrent": recurrent[0]}
    return {}
