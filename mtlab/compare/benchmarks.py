"""The comparison's benchmarks: mtlab.bench in-process on the trained checkpoints, reused when nothing changed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mt.api import atomic_write_text, compose
from mtlab.bench import run_bench
from mtlab.bench.table import render
from mtlab.compare.cache import as_json, reusable
from mtlab.compare.runs import RunOutcome

log = logging.getLogger(__name__)


def bench_config(cfg: DictConfig, ckpts: dict[str, str], out_dir: Path) -> DictConfig:
    """conf/bench.yaml + ``cfg.bench_overrides``, with this comparison's models, checkpoints, data and device, and
    the runs' train_overrides/model_overrides (the settings a checkpoint does not record, e.g. gradient clipping)."""
    bench = compose("bench", [str(o) for o in cfg.bench_overrides])
    OmegaConf.set_struct(bench, False)  # checkpoints and models are added below
    models = list(cfg.bench_models or cfg.models)
    own = {p: list(o) for p, o in (cfg.model_overrides or {}).items() if p in models}
    return OmegaConf.merge(bench, {
        "models": models, "ckpts": {p: c for p, c in ckpts.items() if p in models},
        "train_overrides": list(cfg.train_overrides), "model_overrides": own, "device": cfg.device,
        "seed": cfg.seed, "paths": OmegaConf.merge(cfg.paths, {"output_dir": str(out_dir)}), "data": cfg.data,
        "decode": cfg.decode})


def run_benchmarks(cfg: DictConfig, outcomes: dict[str, RunOutcome], out_dir: Path) -> dict:
    """bench.json of ``out_dir`` when it was made from the same checkpoints and settings, else a fresh run."""
    ckpts = {p: str(o.checkpoint()) for p, o in outcomes.items() if o.checkpoint() is not None}
    bcfg = bench_config(cfg, ckpts, out_dir)
    stamp = {"checkpoints": {p: [c, Path(c).stat().st_mtime] for p, c in ckpts.items()},
             "config": OmegaConf.to_container(bcfg, resolve=True)}
    stamp, path = as_json(stamp), out_dir / "bench.json"
    if (earlier := reusable(path, stamp, "compare_stamp", bool(cfg.rerun_bench))) is not None:
        return earlier
    log.info("benchmarks: measuring (sections %s) into %s", list(bcfg.sections), out_dir)
    results = run_bench(bcfg, out_dir)
    results["compare_stamp"] = stamp
    atomic_write_text(path, json.dumps(results, indent=2) + "\n")
    atomic_write_text(out_dir / "bench.txt", render(results))
    return results
