"""REPORT.md of the comparison: verdicts, setup, and one table per metric, from results.json's numbers."""

from __future__ import annotations

from mtlab.bench.table import fmt


def md_table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


def _min(seconds: float | None) -> str:
    if seconds is None:
        return "not reached"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _f(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def _batches(s: dict) -> str:
    padding = _f(100 * s["padding_fraction"] if s.get("padding_fraction") is not None else None, 1)
    return f"{fmt(s.get('train_batches'))} training batches of <= {fmt(s.get('max_tokens'))} tokens, padding {padding}%"


def _batches_line(data: dict, own: dict[str, dict]) -> str:
    """The training batches: each model's own (the benchmarks measured them), else the benchmark data's."""
    if not own:
        return _batches(data)
    groups: dict[str, list[str]] = {}
    for preset, s in own.items():
        groups.setdefault(_batches(s), []).append(preset)
    return "; ".join(f"{', '.join(presets)}: {line}" for line, presets in groups.items())


def setup_section(res: dict) -> str:
    s, b, d = res["system"], res["budget"], res.get("data", {})
    gpu = s.get("cuda_device") or "none"
    together = b.get("parallel_note") or {"all": "every run at once", "seed": "a seed's models at once"}.get(
        b.get("parallel_mode", "seed"))  # results.json of earlier versions: no parallel_note
    mode = f"{together} (OMP_NUM_THREADS={b['omp_threads']} each)" if b["parallel"] else "one after the other"
    lines = [
        "## Setup",
        f"- Hardware: {s['cpu']}, {s['cpu_count']} cores; GPU: {gpu}.",
        f"- Software: Python {s['python']}, torch {s['torch']}, Lightning {s['lightning']} ({s['platform']}).",
        f"- Data: {d.get('name', 'n/a')} {d.get('pair', '')}, joint vocabulary {fmt(d.get('vocab_size'))}; "
        + _batches_line(d, res.get("bench", {}).get("throughput", {}).get("real_batches") or {}) + ".",
        f"- Training budget per model: max epochs {b['max_epochs']}, max time {b['max_time'] or 'none'}, precision "
        f"{b['precision']}; the runs this command trained or resumed: {mode}; train.py overrides: "
        f"`{' '.join(b['train_overrides'])}`.",
        f"- Benchmarks on {res['bench_system']['device']} (load average {res['bench_system']['load_average_1m']} "
        f"when they started; torch threads {res['bench_system']['torch_threads']}).",
    ]
    return "\n".join(lines)


def quality_section(res: dict) -> str:
    rows, sigs = [], set()
    for p, s in res["runs"].items():
        vb = s["val_best"] or {}
        tests = s["test"] or {"n/a": {}}
        for name, t in tests.items():
            rows.append([p, s["params"], _f(vb.get("bleu")), _f(vb.get("chrf")), fmt(vb.get("epoch")), name,
                         _f(t.get("bleu")), _f(t.get("chrf"))])
            if t:
                sigs.add(f"BLEU `{t['bleu_signature']}`; chrF `{t['chrf_signature']}`")
    out = ["## Parameters and translation quality",
           md_table(["model", "params", "best val BLEU", "val chrF (at best BLEU)", "epoch of best", "test set",
                     "test BLEU", "test chrF"], rows),
           "", "Test scores are of the best validation checkpoint (the pipeline's own test pass, the decoding code "
           "of evaluate.py). sacreBLEU signatures: " + ("; ".join(sorted(sigs)) or "n/a") + "."]
    averaged = [f"{p} {name} {t['bleu']:.2f} BLEU / {t['chrf']:.2f} chrF" for p, s in res["runs"].items()
                for name, t in (s.get("test_averaged") or {}).items()]
    if averaged:
        out += ["", "The average of each run's best checkpoints (average_best=true), tested the same way: "
                + "; ".join(averaged) + "."]
    seeded = {p: s["seeds"] for p, s in res["runs"].items() if s.get("seeds")}
    if seeded:
        srows = [[p, ", ".join(map(str, v["seeds"])), name, f"{t['bleu_mean']:.2f} ± {t['bleu_std']:.2f}",
                  f"{t['chrf_mean']:.2f} ± {t['chrf_std']:.2f}", " / ".join(f"{b:.2f}" for b in t["bleu"]),
                  " / ".join(v.get("stopped_by") or ["n/a"])]
                 for p, v in seeded.items() for name, t in v["test"].items()]
        out += ["", "Over seeds (the table above is the first seed's run; mean ± sample standard deviation):",
                md_table(["model", "seeds", "test set", "test BLEU", "test chrF", "BLEU per seed", "stopped by"],
                         srows)]
    return "\n".join(out)


def training_section(res: dict) -> str:
    rows = [[p, fmt(s["epochs"]), s.get("stopped_by", "n/a"), fmt(s["global_step"]), _min(s["fit_seconds"]),
             "n/a" if s["peak_memory_mb"] is None else f"{s['peak_memory_mb']:,.0f} MB",
             _f(s["train_tok_s_median"], 0), _f(s["bench_tok_s_pipeline"], 0), _f(s["bench_tok_s_bare"], 0)]
            for p, s in res["runs"].items()]
    levels = next(iter(res["runs"].values()))["time_to_bleu"] if res["runs"] else {}
    trows = [[f"BLEU {lvl}", *(_min(s["time_to_bleu"][lvl]) for s in res["runs"].values())] for lvl in levels]
    return "\n".join([
        "## Training: time, memory, throughput",
        md_table(["model", "epochs", "stopped by", "steps", "fit time", "peak memory", "tok/s (training log median)",
                  "tok/s bench pipeline", "tok/s bench bare loop"], rows), "",
        "Stopped by: early_stopping (validation BLEU stopped improving: converged by that criterion), or a limit "
        "(max_epochs, max_time, max_steps; the verdicts also count max_epochs as converged after at least "
        "claims.converged_min_epochs epochs). Fit time: wall-clock of fitting, validation included, summed over "
        "resumes. Peak memory: CUDA peak allocated, or the training process's peak RSS on CPU (of its last start when resumed). The bench "
        "figures are on the real training batches at the training precision, one model at a time.", "",
        "### Wall-clock time to reach a validation BLEU", md_table(["level", *res["runs"]], trows)])


def throughput_section(bench: dict) -> str:
    t = bench.get("throughput")
    if not t:
        return "## Training throughput benchmark\nnot measured"
    rows = [[r["preset"], r["precision"], r["source"], round(r["tokens_per_step"]), _f(r["bare_tok_s"], 0),
             _f(r["pipeline_tok_s"], 0), "n/a" if r["pipeline_vs_bare"] is None else f"{r['pipeline_vs_bare']:.2f}x"]
            for r in t["rows"]]
    return "\n".join([f"## Training throughput benchmark (target tokens/s; median of {t['repeats']} alternating "
                      f"runs of {t['steps']} steps after {t['warmup']} warm-up)",
                      md_table(["model", "precision", "batches", "tokens/step", "bare PyTorch loop",
                                "pipeline (Lightning)", "pipeline/bare"], rows)])


def memory_section(bench: dict) -> str:
    m = bench.get("memory")
    if not m or not m["curves"]:
        return "## Memory against sequence length\nnot measured"
    curves = m["curves"]
    lengths = sorted({p["length"] for c in curves for p in c["points"]})
    by = {c["name"]: {p["length"]: p for p in c["points"]} for c in curves}
    rows = [[n, *("skipped" if not by[c["name"]][n]["bytes"] else f"{by[c['name']][n]['bytes'] / 2**20:,.1f}"
                  for c in curves)] for n in lengths]
    exps = [[c["name"], _f(c["exponent"]), c["backend"],
             next((p["skipped"] for p in c["points"] if p["skipped"]), "")] for c in curves]
    return "\n".join([f"## Memory against sequence length (MiB: {curves[0]['metric']}; batch {m['batch_size']}, "
                      f"precision {m['precision']})", md_table(["length", *by], rows), "",
                      md_table(["curve", "growth exponent (upper half)", "attention kernel", "skipped"], exps)])


def decoding_section(bench: dict) -> str:
    d = bench.get("decoding")
    if not d:
        return "## Decoding\nnot measured"
    notes = [f"- {p}: {'trained checkpoint' if ok else 'no checkpoint: random weights, fixed output length'}"
             for p, ok in d["trained"].items()]
    speed = [[s["preset"], "greedy" if s["beam"] == 1 else f"beam {s['beam']}", s["sentences"], _f(s["sent_s"], 1),
              _f(s["tok_s"], 0)] for s in d["speed"]]
    single = [[r["preset"], r["beam"], _f(1000 * r["batched_s_per_sentence"]), _f(1000 * r["single_s_per_sentence"]),
               f"{r['speedup']:.1f}x"] for r in d["batched_vs_single"]]
    lat = d["latency"]
    n = len(lat[0]["ms"]) if lat else 0
    marks = sorted({p for p in (1, 10, 50, 100, n) if 0 < p <= n})
    lrows = [[c["name"], *(_f(c["ms"][p - 1]) for p in marks), f"{c['growth']:.2f}x",
              f"{c['state_bytes'][0] / 1024:,.0f} / {c['state_bytes'][-1] / 1024:,.0f}" if c.get("state_bytes") else "n/a"]
             for c in lat]
    cache = [f"- {p}: cached {r['cached_ms']:.2f} ms vs uncached {r['uncached_ms']:.2f} ms per step around position "
             f"{r['at']}: {r['ratio']:.1f}x" for p, r in d["cache_speedup"].items()]
    return "\n".join(["## Decoding (validation set)", *notes, "",
                      md_table(["model", "search", "sentences", "sentences/s", "tokens/s"], speed), "",
                      "Batched beam search over the whole set vs one sentence at a time (evenly spaced subset), "
                      "ms per sentence:", md_table(["model", "beam", "batched", "one at a time", "speed-up"], single),
                      "", "Per-token latency of incremental decoding, ms per step (median) at position:",
                      md_table(["decoder", *map(str, marks), "last/first tenth", "state KiB first / last"], lrows), "",
                      *cache])


def streaming_section(bench: dict, simul: dict) -> str:
    lines = ["## Simultaneous (streaming) translation"]
    if simul and simul.get("curves"):
        s = simul["settings"]
        lines.append(f"BLEU against lag on the first {simul['sentences']} sentences of {s['split']} (beam "
                     f"{s['beam_size']} within the wait-k policy; AL/LAAL/DAL in source subwords, AL also in source "
                     f"words; `{simul['signature']}`). Streaming runs read the source incrementally; full-sentence "
                     "runs are the test-time wait-k baseline (they re-encode the visible prefix each time it grows).")
        rows = [[c["preset"], f"wait-{c['trained_wait_k']} (multi-path)" if c["trained_wait_k"] else "full sentence",
                 p["k"], _f(p["bleu"]), _f(p["chrf"]), _f(p["al"]), _f(p["laal"]), _f(p["dal"]), _f(p["al_words"])]
                for c in simul["curves"] for p in c["points"]]
        lines.append(md_table(["run", "trained", "k", "BLEU", "chrF", "AL", "LAAL", "DAL", "AL (words)"], rows))
    st = bench.get("streaming")
    if st:
        rows = [[r["model"], r["length"], _f(r["token_ms"]), _f(r["token_min_ms"]), _f(r["read_ms"]),
                 f"{r['encoder_state_bytes'] / 1024:,.0f}", f"{r['decoder_state_bytes'] / 1024:,.0f}"] for r in st["rows"]]
        lines += ["", f"Cost per incoming source token as the stream grows (wait-{st['wait_k']} loop, random weights, "
                  f"median over {st['window']} tokens before each length; device {st['device']}):",
                  md_table(["model", "stream length", "per token ms", "fastest token ms", "encoder read ms",
                            "encoder state KiB", "decoder state KiB"], rows)]
    return "\n".join(lines) if len(lines) > 1 else "## Simultaneous (streaming) translation\nnot measured"


def significance_section(sig: dict) -> str:
    if not sig:
        return "## Significance\nnot measured"
    rows = []
    for pair, r in (sig.get("pairs") | sig.get("peers", {})).items():
        a, b = pair.split("|")
        for m in r["metrics"].values():
            rows.append([a, b, m["metric"], f"{m['a']['score']:.2f} ({m['a']['mean']:.2f} ± {m['a']['ci']:.2f})",
                         f"{m['b']['score']:.2f} ({m['b']['mean']:.2f} ± {m['b']['ci']:.2f})", f"{m['p_value']:.4f}"])
    out = [f"## Significance (paired bootstrap, {sig['n_samples']} resamples, {sig['split']}; mean ± 95% "
           "CI half-width; each run's best checkpoint with its own decoding settings; a peer's translations as its "
           "runner made them)",
           md_table(["A", "B", "metric", "A", "B", "p-value"], rows)]
    if sig.get("per_seed"):
        prow = [[*pair.split("|"), m, " / ".join(f"{t['metrics'][m]['p_value']:.4f}" for t in tests)]
                for pair, tests in sig["per_seed"].items() for m in tests[0]["metrics"]]
        out += ["", "Each seed's pair of runs (first seed first):",
                md_table(["A", "B", "metric", "p-value per seed"], prow)]
    return "\n".join(out)


def peers_section(peers: dict[str, dict], levels: list[str]) -> str:
    if not peers:
        return "## Peers\nnone (peers: in conf/compare.yaml)"
    rows = [[n, f"{p['system']} {p['model']} ({p['checkpoint']} checkpoint)", fmt(p["params"]), name, _f(t["bleu"]),
             _f(t["chrf"]), _f(p["train_tok_s_median"], 0), *(_min(p["time_to_bleu"].get(lvl)) for lvl in levels)]
            for n, p in peers.items() for name, t in (p["test"] or {"n/a": {"bleu": None, "chrf": None}}).items()]
    return "\n".join(["## Peers (outside systems, trained on this machine beforehand; their own greedy validation)",
                      md_table(["peer", "system", "params", "test set", "test BLEU", "test chrF",
                                "tok/s (its log, median)", *(f"to BLEU {lvl}" for lvl in levels)], rows)])


def targets_section(bench: dict) -> str:
    rows = [[t["name"], "n/a" if t["value"] is None else f"{t['value']:.3g}", f"{t['op']} {t['target']:g}",
             "n/a" if t["pass"] is None else "pass" if t["pass"] else "FAIL"] for t in bench.get("targets", [])]
    return "## Engineering targets (mtlab.bench)\n" + md_table(["target", "measured", "wanted", "result"], rows)


def render_report(res: dict) -> str:
    """The whole REPORT.md."""
    bench = res["bench"]
    claims = res["claims"] or []
    verdicts = [f"{c['id']}. {c['claim']}: **{c['verdict']}**. {c['evidence']}." for c in claims] or [
        "No verdicts: the claims need one Transformer and one recurrent model."]
    plots = [f"![{name}]({file})" for name, file in res["plots"].items()]
    parts = [f"# {' vs '.join(res['runs'])}: {res['data'].get('name', '')} {res['data'].get('pair', '')}",
             f"Written by `python -m mtlab.compare` on {res['written']}. Every number below is measured (results.json "
             "holds them all); the verdicts are computed from them with the thresholds in conf/compare.yaml.",
             "## Verdicts\n" + "\n".join(verdicts), setup_section(res), quality_section(res),
             significance_section(res.get("significance") or {}),
             peers_section(res.get("peers") or {}, [f"{x:g}" for x in res["config"]["bleu_levels"]]),
             training_section(res),
             throughput_section(bench), memory_section(bench), decoding_section(bench),
             streaming_section(bench, res.get("simultaneous") or {}), targets_section(bench),
             "## Plots\n" + ("\n\n".join(plots) or "none")]
    return "\n\n".join(parts) + "\n"
