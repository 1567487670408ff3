"""compare(cfg): train (or resume) every model, benchmark the checkpoints, write REPORT.md, results.json, plots."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mt.api import MTError, Translator, atomic_write_text, attention_heatmap, eval_split_names, resolve_device
from mtlab.bench.system import system_info
from mtlab.compare.benchmarks import run_benchmarks
from mtlab.compare.claims import streaming_verdicts, verdicts
from mtlab.compare.peers import read_peers
from mtlab.compare.plots import write_plots
from mtlab.compare.report import render_report
from mtlab.compare.runs import execute, parallel_mode, plan_runs, read_outcome, run_env, status_line
from mtlab.compare.significance import pairwise_significance
from mtlab.compare.simultaneous import simultaneous_curves
from mtlab.compare.summary import roles, summarize_run, time_to_bleu
from mtlab.overrides import forwarded_overrides

log = logging.getLogger(__name__)


def attention_plots(cfg: DictConfig, outcomes: dict, out: Path) -> dict[str, str]:
    """A cross-attention heatmap of each trained model on the same test sentence: {name: file name in out}."""
    sentence = str(cfg.attention_sentence)
    plots = {}
    for preset, outcome in outcomes.items():
        if outcome.checkpoint() is None:
            continue
        translator = Translator.from_checkpoint(outcome.checkpoint(), device=str(cfg.device))
        path, _ = attention_heatmap(translator, sentence, out / f"attention_{preset}.png",
                                    f"{preset} ({translator.model.traits.family}): cross-attention")
        plots[f"attention_{preset}"] = path.name
    return plots


def check_splits(cfg: DictConfig) -> None:
    """The significance test's and the simultaneous curves' splits must be splits of the data, checked before any
    training (a wrong name would only fail once every run had trained)."""
    splits = eval_split_names(cfg.data)
    keys = ["significance.split"] + (["simultaneous.split"] if cfg.simultaneous.presets else [])
    for key in keys:
        split = str(OmegaConf.select(cfg, key))
        if split not in splits:
            raise MTError(f"{key}={split!r} is not a split of this data config; use one of {', '.join(splits)}")


def run_status(cfg: DictConfig, task_overrides: list[str]) -> list[str]:
    """``status=true``: where each run of the comparison stands, one line each; nothing is trained."""
    plans = plan_runs(cfg, Path(cfg.output_dir).resolve(), forwarded_overrides(task_overrides))
    return [status_line(p) for p in plans]


def compare(cfg: DictConfig, task_overrides: list[str]) -> dict:
    """The whole comparison; ``task_overrides`` are this command's Hydra overrides (data/paths/decode go on)."""
    out = Path(cfg.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    levels = [float(x) for x in cfg.bleu_levels]
    peers = {name: dict(p, time_to_bleu=time_to_bleu(p["val_curve"], levels))  # read first: a typo fails now
             for name, p in read_peers(cfg.peers).items()}
    mode = parallel_mode(cfg.parallel)  # a typo fails before any training
    check_splits(cfg)
    plans = plan_runs(cfg, out, forwarded_overrides(task_overrides))
    execute(plans, mode)
    every_seed = {preset: [read_outcome(p.preset, p.run_dir) for p in plans if p.preset == preset]
                  for preset in dict.fromkeys(p.preset for p in plans)}  # first seed first
    outcomes = {preset: runs[0] for preset, runs in every_seed.items()}  # benchmarked, plotted, wait-k decoded

    bench = run_benchmarks(cfg, outcomes, out / "bench")
    simul = simultaneous_curves(cfg, outcomes, out / "simultaneous")
    significance = pairwise_significance(cfg, every_seed, out / "significance", peers)
    runs = {p: summarize_run(o, bench, levels, every_seed[p]) for p, o in outcomes.items()}
    first = next(iter(runs.values()))
    n_together = mode.at_once(len(cfg.models), len(plans))  # runs at once (runs.execute)
    results = {
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "output_dir": str(out),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "system": system_info(resolve_device(str(cfg.device))),
        "bench_system": bench["system"],
        "data": bench.get("data", {}),
        "budget": {**first["budget"], "parallel": mode.shared, "parallel_mode": mode.mode,
                   "parallel_note": mode.describe(),
                   "omp_threads": run_env(mode.shared, n_together).get("OMP_NUM_THREADS", os.environ.get(
                       "OMP_NUM_THREADS")), "train_overrides": [str(o) for o in cfg.train_overrides]},
        "runs": runs,
        "roles": roles(runs),
        "bench": bench,
        "simultaneous": simul,
        "significance": significance,
        "peers": peers,
    }
    results["claims"] = verdicts(runs, results["roles"], bench, cfg.claims, significance) + streaming_verdicts(
        simul, bench, cfg.claims)
    results["plots"] = write_plots(runs, bench, out, simul, peers)
    results["plots"].update(attention_plots(cfg, outcomes, out))
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "REPORT.md", render_report(results))
    return results
