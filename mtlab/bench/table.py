"""Plain-text, column-aligned tables of the benchmark results (what ``python -m mtlab.bench`` prints)."""

from __future__ import annotations

import re

_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?[x%]?$")


def fmt(value: object, digits: int = 1) -> str:
    """Numbers with thousands separators and ``digits`` decimals; None as n/a; booleans as yes/no."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def format_table(headers: list[str], rows: list[list[object]]) -> str:
    """Aligned columns; a column whose cells are all numbers (or n/a) is right-aligned."""
    cells = [[fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [bool(cells) and all(_NUMBER.match(r[i]) or r[i] in ("n/a", "-", "skipped") for r in cells)
               for i in range(len(headers))]

    def line(parts: list[str]) -> str:
        cols = zip(parts, widths, numeric, strict=True)
        return "  ".join(p.rjust(w) if num else p.ljust(w) for p, w, num in cols).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:,.1f}"


def render_system(info: dict) -> str:
    gpu = f", GPU {info['cuda_device']}" if info.get("cuda_device") else ""
    return (f"device {info['device']}{gpu}; CPU {info['cpu']} ({info['cpu_count']} cores, torch threads "
            f"{info['torch_threads']}, load average {info['load_average_1m']} at start); python {info['python']}, "
            f"torch {info['torch']}, lightning {info['lightning']}")


def render_throughput(section: dict) -> str:
    rows = [[r["preset"], r["precision"], r["source"], round(r["tokens_per_step"]), r["bare_tok_s"],
             r["pipeline_tok_s"], None if r["pipeline_vs_bare"] is None else f"{r['pipeline_vs_bare']:.2f}x",
             r.get("mflop_per_token"), None if r.get("bare_of_peak") is None else f"{r['bare_of_peak']:.0%}"]
            for r in section["rows"]]
    head = (f"Training throughput, target tokens/s (median of {section['repeats']} alternating runs of "
            f"{section['steps']} timed steps after {section['warmup']} warm-up; forward, backward, AdamW, clipping)")
    table = format_table(["model", "precision", "batches", "tokens/step", "bare loop", "pipeline (Lightning)",
                          "pipeline/bare", "MFLOP/token", "bare of matmul peak"], rows)
    peaks = section.get("matmul_peak_gflop_s")  # older bench.json files have none
    note = "" if not peaks else ("\n  matmul peak (GFLOP/s, large square products): "
                                 + ", ".join(f"{p} {v:,.1f}" for p, v in peaks.items())
                                 + "; bare of peak = bare tok/s x MFLOP/token over it")
    return head + "\n" + table + note


def render_memory(section: dict) -> str:
    curves = section["curves"]
    if not curves:
        return "Memory: nothing measured"
    lengths = sorted({p["length"] for c in curves for p in c["points"]})
    by = {c["name"]: {p["length"]: p for p in c["points"]} for c in curves}
    rows = []
    for n in lengths:
        row: list[object] = [n]
        for c in curves:
            p = by[c["name"]].get(n)
            row.append("-" if p is None else mib(p["bytes"]) if p["bytes"] else "skipped")
        rows.append(row)
    lines = [f"Memory against sequence length (MiB; {curves[0]['metric']}; batch {section['batch_size']}, "
             f"precision {section['precision']})", format_table(["length", *(c["name"] for c in curves)], rows)]
    for c in curves:
        exp = "n/a" if c["exponent"] is None else f"{c['exponent']:.2f}"
        span = f" over lengths {c['exponent_lengths'][0]}-{c['exponent_lengths'][-1]}" if c["exponent_lengths"] else ""
        lines.append(f"  {c['name']}: growth exponent {exp}{span}; attention kernel: {c['backend']}")
        skipped = [p for p in c["points"] if p["skipped"]]
        if skipped:
            lines.append(f"    skipped from length {skipped[0]['length']}: {skipped[0]['skipped']}")
    return "\n".join(lines)


def render_decoding(section: dict, device: str) -> str:
    lines = [f"Decoding (validation set, {section['sentences']} sentences, on {device})"]
    for preset, trained in section["trained"].items():
        if not trained:
            lines.append(f"  {preset}: no checkpoint given (ckpts.{preset}): randomly initialised model, exactly "
                         f"{section['random_output_tokens']} output tokens per sentence")
    rows = [[s["preset"], "greedy" if s["beam"] == 1 else f"beam {s['beam']}", s["sentences"], s["output_tokens"],
             s["sent_s"], s["tok_s"]] for s in section["speed"]]
    lines.append(format_table(["model", "search", "sentences", "output tokens", "sentences/s", "tokens/s"], rows))
    rows = [[r["preset"], r["beam"], r["batched_s_per_sentence"] * 1000, r["single_s_per_sentence"] * 1000,
             f"{r['speedup']:.1f}x"] for r in section["batched_vs_single"]]
    lines += ["", "Batched beam search (whole set) vs one sentence at a time (evenly spaced subset): ms per sentence",
              format_table(["model", "beam", "batched", "one at a time", "speed-up"], rows)]
    curves = section["latency"]
    if curves:
        n = len(curves[0]["ms"])
        marks = [p for p in (1, 10, 50, 100, n) if p <= n]
        marks = sorted(set(marks))
        rows = [[c["name"], *(f"{c['ms'][p - 1]:.2f}" for p in marks), f"{c['growth']:.2f}x"] for c in curves]
        lines += ["", "Per-token latency of incremental decoding (ms per step, median) at position",
                  format_table(["decoder", *(str(p) for p in marks), "last/first tenth"], rows)]
    for preset, r in section["cache_speedup"].items():
        lines.append(f"  {preset}: cached {r['cached_ms']:.2f} ms vs uncached {r['uncached_ms']:.2f} ms per step "
                     f"around position {r['at']}: {r['ratio']:.1f}x")
    return "\n".join(lines)


def render_targets(targets: list[dict]) -> str:
    rows = [[t["name"], "n/a" if t["value"] is None else f"{t['value']:.3g}", f"{t['op']} {t['target']:g}",
             "n/a" if t["pass"] is None else "PASS" if t["pass"] else "FAIL"] for t in targets]
    return "Targets\n" + format_table(["target", "measured", "wanted", "result"], rows)


def render(results: dict) -> str:
    """The whole benchmark report as text."""
    parts = [render_system(results["system"])]
    parts += [f"{p}: skipped ({why})" for p, why in (results.get("skipped_precisions") or {}).items()]
    if "throughput" in results:
        parts.append(render_throughput(results["throughput"]))
    if "memory" in results:
        parts.append(render_memory(results["memory"]))
    if "decoding" in results:
        parts.append(render_decoding(results["decoding"], results["system"]["device"]))
    if "streaming" in results:
        from mtlab.bench.streaming import format_streaming  # (it imports this module's format_table)

        s = results["streaming"]
        parts.append(f"Streaming: cost per incoming source token (wait-{s['wait_k']}, random weights, median of "
                     f"{s['window']} tokens around each length)\n" + format_streaming(s))
    if "export" in results:
        e = results["export"]
        rows = [[r["preset"], r["engine"], r["weights"], r["beam"], r["sent_s"], r["tok_s"], r["bleu"]] for r in e["rows"]]
        skipped = "".join(f"\n  {p}: skipped ({why})" for p, why in e["skipped"].items())
        parts.append(f"Decoding speed: this project's search vs CTranslate2 ({e['sentences']} validation sentences, "
                     f"{e['threads']} threads)\n" + format_table(["model", "engine", "weights", "beam", "sentences/s",
                                                                   "tokens/s", "BLEU"], rows) + skipped)
    if "data_scale" in results:
        rows = [[r["pairs"], r["kept"], r["first_s"], r["first_peak_rss_mb"], r["cached_s"], r["cached_peak_rss_mb"],
                 r["us_per_pair"]] for r in results["data_scale"]["rows"]]
        parts.append("Data preparation against corpus size (python -m mt.data in a fresh process each)\n" + format_table(
            ["pairs", "kept", "first s", "first peak RSS MB", "cached s", "cached peak RSS MB", "us/pair"], rows))
    if "recipes" in results:
        a = results["recipes"]
        rows = [[r["preset"], r["precision"], r["name"], " ".join(r["overrides"]) or "-", r["tok_s"],
                 f"{r['defaults_vs_set']:.2f}x"] for r in a["rows"]]
        parts.append(f"Recipes: whole train.py runs of {a['steps']} steps without validation, fresh processes, "
                     f"median of {a['repeats']} rotating runs (tok/s = target tokens trained / fit wall-clock)\n"
                     + format_table(["model", "precision", "set", "overrides", "tok/s", "defaults / set"], rows))
    parts.append(render_targets(results["targets"]))
    return "\n\n".join(parts) + "\n"
