"""The targets block: each target with its measured value and pass/fail, from the measured numbers only."""

from __future__ import annotations

from omegaconf import DictConfig


def _target(name: str, value: float | None, op: str, target: float) -> dict:
    passed = None if value is None else (value >= target if op == ">=" else value < target)
    return {"name": name, "value": value, "op": op, "target": target, "pass": passed}


def evaluate_targets(results: dict, cfg: DictConfig) -> list[dict]:
    """One entry per measured instance of each target in ``cfg`` (the ``targets`` node)."""
    out = []
    for row in results.get("throughput", {}).get("rows", []):
        if row["pipeline_vs_bare"] is not None:
            out.append(_target(f"pipeline / bare training tok/s ({row['preset']}, {row['precision']}, "
                               f"{row['source']})", row["pipeline_vs_bare"], ">=", float(cfg.pipeline_vs_bare)))
    decoding = results.get("decoding", {})
    for row in decoding.get("batched_vs_single", []):
        out.append(_target(f"batched / one-at-a-time beam {row['beam']} speed per sentence ({row['preset']})",
                           row["speedup"], ">=", float(cfg.batched_beam_speedup)))
    for preset, row in decoding.get("cache_speedup", {}).items():
        out.append(_target(f"cached / uncached step speed at position {row['at']} ({preset})", row["ratio"], ">=",
                           float(cfg.cache_speedup)))
    own = results.get("throughput", {}).get("real_batches") or {}  # each preset's training batches, when measured
    paddings = {f" ({p})": s["padding_fraction"] for p, s in own.items()} or {
        "": results.get("data", {}).get("padding_fraction")}
    for name, padding in paddings.items():
        out.append(_target(f"padding fraction of the training batches{name}", padding, "<",
                           float(cfg.padding_fraction)))
    return out
