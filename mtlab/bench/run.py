"""run_bench(cfg): every selected section, the targets, bench.json; the plain function behind mtlab.bench."""

from __future__ import annotations

import functools
import json
import logging
import shutil
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from mt.api import (
    LIGHTNING,
    ExportError,
    MTError,
    TranslationDataModule,
    atomic_write_text,
    compose,
    has_bf16_units,
    resolve_device,
)
from mtlab.bench.data_scale import measure_data_scale
from mtlab.bench.data_scale import rows as scale_rows
from mtlab.bench.data_scale import to_json as scale_json
from mtlab.bench.decoding import measure_decoding
from mtlab.bench.export_speed import export_speed
from mtlab.bench.flops import matmul_peak
from mtlab.bench.memory import measure_curves
from mtlab.bench.models import BATCHING, ModelSpec, model_specs
from mtlab.bench.recipes import measure_recipes
from mtlab.bench.streaming import measure_streaming
from mtlab.bench.system import system_info
from mtlab.bench.targets import evaluate_targets
from mtlab.bench.throughput import measure, synthetic_batches
from mtlab.overrides import forwarded_overrides

log = logging.getLogger(__name__)

SECTIONS = ("throughput", "memory", "decoding", "streaming", "export", "data", "recipes")


def _check(cfg: DictConfig) -> None:
    unknown = sorted(set(cfg.sections) - set(SECTIONS))
    if unknown:
        raise MTError(f"sections: unknown {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    bad = sorted({str(p) for p in cfg.precisions} - set(LIGHTNING))
    if bad:
        raise MTError(f"precisions: unknown {', '.join(bad)}; use 32, bf16 or 16")
    if cfg.emulated_bf16 not in ("skip", "measure"):
        raise MTError(f"emulated_bf16={cfg.emulated_bf16!r}: use skip or measure")
    bad = sorted(set(cfg.throughput.sources) - {"synthetic", "real"})
    if bad:
        raise MTError(f"throughput.sources: unknown {', '.join(bad)}; use synthetic and/or real")
    if int(cfg.throughput.warmup) < 1 or int(cfg.throughput.steps) < 1:
        raise MTError("throughput.warmup and throughput.steps must be at least 1")


def _real_batches(dm: TranslationDataModule, n: int) -> list:
    """The first ``n`` batches of the training loader (epoch 0), repeated from the start if there are fewer."""
    loaded = []
    for batch in dm.train_dataloader():
        loaded.append(batch)
        if len(loaded) == n:
            break
    return [loaded[i % len(loaded)] for i in range(n)]


def _rebatched(dm: TranslationDataModule, cfg: DictConfig, batching: dict) -> TranslationDataModule:
    """``dm`` (the benchmark data, ``cfg.data``), or the same corpus and tokenizer batched with ``batching``."""
    if all(cfg.data[k] == v for k, v in batching.items()):
        return dm
    other = TranslationDataModule(OmegaConf.merge(cfg.data, batching), cfg.paths, seed=int(cfg.seed),
                                  tokenizer=dm.tokenizer)
    other.prepare_data()
    other.setup()
    return other


def run_throughput(specs: dict[str, ModelSpec], dm: TranslationDataModule, vocab_size: int, device: torch.device,
                   cfg: DictConfig) -> dict:
    t = cfg.throughput
    n = int(t.warmup) + int(t.steps)
    synthetic = {}
    if "synthetic" in t.sources:
        synthetic["synthetic"] = synthetic_batches(n, int(t.synthetic_batch), int(t.synthetic_length), vocab_size,
                                                   int(cfg.seed))
    real: dict[tuple, tuple[list, dict]] = {}  # a preset's batching settings -> its real batches, their statistics
    real_stats = {}  # preset -> statistics of the batches it trains with (the bench corpus, its batching)
    rows = []
    peaks = {p: matmul_peak(p, device, int(t.peak_matmul_size[device.type])) for p in map(str, cfg.precisions)}
    for preset, spec in specs.items():
        make_module = functools.partial(spec.module, vocab_size, int(cfg.seed))
        sources = dict(synthetic)
        if "real" in t.sources:
            batching = {k: spec.batching.get(k, cfg.data[k]) for k in BATCHING}  # the preset's, on the bench corpus
            key = tuple(batching.values())
            if key not in real:
                own = _rebatched(dm, cfg, batching)
                stats = own.stats()
                real[key] = _real_batches(own, n), {k: stats[k] for k in ("train_batches", "max_tokens",
                                                                           "padding_fraction")}
            sources["real"], real_stats[preset] = real[key]
        for precision in map(str, cfg.precisions):
            for source, batches in sources.items():
                start = time.perf_counter()
                row = measure(spec, make_module, batches, precision, source, device, t, peaks[precision])
                rows.append(row.as_dict())
                log.info("throughput %s %s %s: bare %.0f tok/s, pipeline %s (%.0f s)", preset, precision, source,
                         row.bare_tok_s, "n/a" if row.pipeline_tok_s is None else f"{row.pipeline_tok_s:.0f} tok/s",
                         time.perf_counter() - start)
    return {"warmup": int(t.warmup), "steps": int(t.steps), "repeats": int(t.repeats),
            "matmul_peak_gflop_s": {p: round(f / 1e9, 1) for p, f in peaks.items()},
            "synthetic_shape": [int(t.synthetic_batch), int(t.synthetic_length)], "rows": rows,
            "real_batches": real_stats}


def run_streaming(cfg: DictConfig, vocab_size: int, device: torch.device) -> dict:
    """Per-source-token cost and state of the streaming presets as the stream grows (random weights)."""
    s = cfg.streaming
    lengths = [int(n) for n in s.lengths]
    models = {}
    for preset in s.presets:
        model_cfg = compose("train", [f"model={preset}"]).model
        if "max_positions" in model_cfg:  # position tables must reach the longest stream
            model_cfg.max_positions = max(lengths) + int(s.window) + 8
        models[preset] = model_cfg
    return measure_streaming(models, vocab_size, lengths, device, int(s.wait_k), int(s.window), int(cfg.seed))


def run_export(specs: dict[str, ModelSpec], dm: TranslationDataModule, cfg: DictConfig) -> dict:
    """Decoding speed of each trained checkpoint: this project's search vs its CTranslate2 export (fp32, int8)."""
    e = cfg.export
    n = e.max_sentences
    sources, refs = dm.sources("validation"), dm.references("validation")
    sources, refs = (sources, refs) if n is None else (sources[: int(n)], refs[: int(n)])
    out: dict = {"sentences": len(sources), "threads": int(e.threads), "rows": [], "skipped": {}}
    for preset, spec in specs.items():
        if spec.ckpt is None:
            out["skipped"][preset] = "no checkpoint (ckpts.<preset>=PATH)"
            continue
        try:
            rows = export_speed(spec.ckpt, sources, refs, tgt_lang=str(cfg.data.tgt), beams=tuple(map(int, e.beams)),
                                threads=int(e.threads), quantizations=tuple(e.quantizations))
        except ExportError as err:  # the model says it cannot be converted (e.g. an LSTM)
            out["skipped"][preset] = str(err)
            continue
        out["rows"] += [dict(r.as_dict(), preset=preset) for r in rows]
    return out


def run_data_scale(cfg: DictConfig, out_dir: Path) -> dict:
    """Preparation time and peak memory against corpus size (synthetic corpora built from Multi30k's train set)."""
    d = cfg.data_scale
    workdir = Path(d.workdir) if d.workdir else out_dir / "data_scale"
    points = measure_data_scale([int(n) for n in d.pairs], workdir, Path(cfg.paths.data_dir) / "multi30k",
                                src=str(cfg.data.src), tgt=str(cfg.data.tgt), overrides=list(d.overrides))
    if not d.keep_corpora:  # they take GBs at millions of pairs
        shutil.rmtree(workdir, ignore_errors=True)
    return {"rows": scale_rows(points), "points": scale_json(points)}


def run_recipes(cfg: DictConfig, out_dir: Path, task_overrides: list[str]) -> dict:
    """Whole train.py runs per preset and precision: the defaults against each of ``recipes.sets``."""
    common = [*map(str, cfg.train_overrides or []), *forwarded_overrides(task_overrides, ("data", "paths"))]
    presets = {p: [*common, *map(str, (cfg.model_overrides or {}).get(p) or [])] for p in cfg.models}
    try:
        return measure_recipes(presets, [str(p) for p in cfg.precisions], cfg.recipes, out_dir / "recipes")
    finally:
        shutil.rmtree(out_dir / "recipes", ignore_errors=True)  # the runs' checkpoints: only their speed is kept


def run_bench(cfg: DictConfig, out_dir: Path, task_overrides: list[str] | None = None) -> dict:
    """Run the sections in ``cfg.sections``; write ``out_dir/bench.json``; return everything as plain data.

    ``task_overrides``: the command's own overrides; the recipes section hands its data/paths ones to train.py."""
    _check(cfg)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(str(cfg.device))
    results: dict = {"config": OmegaConf.to_container(cfg, resolve=True), "system": system_info(device)}
    if cfg.emulated_bf16 == "skip" and "bf16" in map(str, cfg.precisions) and not has_bf16_units(device):
        cfg = OmegaConf.merge(cfg, {"precisions": [p for p in cfg.precisions if str(p) != "bf16"]})  # a copy
        results["skipped_precisions"] = {"bf16": "this CPU has no bf16 units (emulated bf16 trains 10-28x slower "
                                                 "than fp32); emulated_bf16=measure measures it anyway"}
        log.warning("bench: bf16 skipped: %s", results["skipped_precisions"]["bf16"])
    specs = model_specs(cfg)
    dm = TranslationDataModule(cfg.data, cfg.paths, seed=int(cfg.seed))
    dm.prepare_data()
    dm.setup()
    stats = dm.stats()
    vocab_size = dm.tokenizer.vocab_size
    results["data"] = {k: stats[k] for k in ("name", "pair", "vocab_size", "train_batches", "max_tokens",
                                             "padding_fraction")}
    with torch.device("meta"):  # parameter counts without allocating
        results["models"] = {p: {"params": s.build(vocab_size, 0).num_parameters(), "ckpt": s.ckpt,
                                 "batching": s.batching,
                                 "model": OmegaConf.to_container(s.cfg.model, resolve=True)} for p, s in specs.items()}
    seconds = {}
    chosen = [s for s in SECTIONS if s in cfg.sections]
    progress = tqdm(chosen, desc="bench", unit="section", disable=not cfg.progress_bar)
    for section in progress:
        progress.set_postfix_str(section)
        start = time.perf_counter()
        log.info("bench: %s", section)
        if section == "throughput":
            results[section] = run_throughput(specs, dm, vocab_size, device, cfg)
        elif section == "memory":
            curves = measure_curves(specs, vocab_size, device, cfg.memory, int(cfg.seed))
            results[section] = {"batch_size": int(cfg.memory.batch_size), "precision": str(cfg.memory.precision),
                                "curves": [c.as_dict() for c in curves]}
        elif section == "streaming":
            results[section] = run_streaming(cfg, vocab_size, device)
        elif section == "export":
            results[section] = run_export(specs, dm, cfg)
        elif section == "data":
            results["data_scale"] = run_data_scale(cfg, out_dir)  # results["data"]: the benchmark data's statistics
        elif section == "recipes":
            results[section] = run_recipes(cfg, out_dir, list(task_overrides or []))
        else:
            results[section] = measure_decoding(specs, dm.tokenizer, vocab_size, dm.sources("validation"),
                                                cfg.decode, device, cfg.decoding, int(cfg.seed))
        seconds[section] = round(time.perf_counter() - start, 1)
    results["seconds"] = seconds
    results["targets"] = evaluate_targets(results, cfg.targets)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "bench.json", json.dumps(results, indent=2) + "\n")
    return results
