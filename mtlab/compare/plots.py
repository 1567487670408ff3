"""PNG charts of the comparison (matplotlib, Agg backend): BLEU vs time, memory vs length, latency, throughput."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name


def _minutes(curve: list[dict]) -> list[tuple[float, float]]:
    """(minutes, BLEU) points of a validation curve, skipping validations without a time."""
    return [(v["elapsed_s"] / 60, v["bleu"]) for v in curve if v["elapsed_s"] is not None]


def bleu_vs_time(runs: dict[str, dict], path: Path, peers: dict[str, dict] | None = None) -> str | None:
    """Validation BLEU against wall-clock minutes: our runs (solid; with several seeds the first seed marked and the
    others thin in the same colour) and the peers' own validations (dashed)."""
    curves = {p: [_minutes(c) for c in (s.get("seeds") or {}).get("val_curves") or [s["val_curve"]]]
              for p, s in runs.items()}
    outside = {f"{n} ({p['system']})": _minutes(p["val_curve"]) for n, p in (peers or {}).items()}
    if not any(any(c) for c in curves.values()) and not any(outside.values()):
        return None
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (preset, seeds) in enumerate(curves.items()):
        color = colors[i % len(colors)]
        ax.plot([], [], color=color, marker="o", markersize=3,
                label=preset if len(seeds) == 1 else f"{preset} ({len(seeds)} seeds, first marked)")
        for k, points in enumerate(seeds):
            if not points:
                continue
            style = {"marker": "o", "markersize": 3} if k == 0 else {"linewidth": 0.8, "alpha": 0.6}
            ax.plot(*zip(*points, strict=True), color=color, **style)
    for j, (name, points) in enumerate(outside.items(), start=len(curves)):
        if points:
            ax.plot(*zip(*points, strict=True), color=colors[j % len(colors)], linestyle="--", marker="x",
                    markersize=3, label=name)
    ax.set(xlabel="wall-clock time since the start of training (min, validation included)",
           ylabel="validation BLEU", title="Validation BLEU against training time")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def memory_vs_length(bench: dict, path: Path) -> str | None:
    curves = [c for c in bench.get("memory", {}).get("curves", []) if any(p["bytes"] for p in c["points"])]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for c in curves:
        points = [(p["length"], p["bytes"] / 2**20) for p in c["points"] if p["bytes"]]
        exp = "" if c["exponent"] is None else f" (slope {c['exponent']:.2f})"
        ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=c["name"] + exp)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set(xlabel="sequence length (source = target tokens)", ylabel="MiB",
           title=f"Training memory against length: {curves[0]['metric']}")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, path)


def latency_vs_position(bench: dict, path: Path) -> str | None:
    curves = bench.get("decoding", {}).get("latency", [])
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for c in curves:
        ax.plot(range(1, len(c["ms"]) + 1), c["ms"], label=c["name"])
    ax.set(xlabel="target position", ylabel="ms per decoder step (median)",
           title="Per-token latency of incremental decoding")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def throughput_bars(runs: dict[str, dict], bench: dict, path: Path) -> str | None:
    groups: dict[str, dict[str, float]] = {}
    for row in bench.get("throughput", {}).get("rows", []):
        value = row["pipeline_tok_s"] or row["bare_tok_s"]
        groups.setdefault(f"bench {row['precision']}\n{row['source']}", {})[row["preset"]] = value
    for preset, s in runs.items():
        if s["train_tok_s_median"] is not None:
            groups.setdefault(f"training log\n{s['train_precision']}", {})[preset] = s["train_tok_s_median"]
    if not groups:
        return None
    presets = list(runs) or sorted({p for g in groups.values() for p in g})
    width = 0.8 / max(len(presets), 1)
    fig, ax = plt.subplots(figsize=(max(6.4, 1.3 * len(groups)), 4.2))
    for i, preset in enumerate(presets):
        xs = [j + (i - (len(presets) - 1) / 2) * width for j in range(len(groups))]
        ax.bar(xs, [g.get(preset, 0.0) for g in groups.values()], width, label=preset)
    ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
    ax.set(ylabel="target tokens / s", title="Training throughput (pipeline; training logs: median)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    return _save(fig, path)


def bleu_vs_lagging(simul: dict, path: Path) -> str | None:
    curves = [c for c in (simul or {}).get("curves", []) if any(p["al"] is not None for p in c["points"])]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for c in curves:
        points = [(p["al"], p["bleu"], p["k"]) for p in c["points"] if p["al"] is not None]
        kind = f"wait-{c['trained_wait_k']} trained" if c["trained_wait_k"] else "test-time wait-k"
        ax.plot([x for x, _, _ in points], [y for _, y, _ in points], marker="o", markersize=3,
                label=f"{c['preset']} ({kind})")
        for x, y, k in points:
            ax.annotate(str(k), (x, y), fontsize=7, textcoords="offset points", xytext=(3, 3))
    ax.set(xlabel="Average Lagging (source subwords)", ylabel="BLEU",
           title=f"Simultaneous translation: BLEU against lag ({simul['sentences']} test sentences)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_plots(runs: dict[str, dict], bench: dict, out_dir: Path, simul: dict | None = None,
                peers: dict[str, dict] | None = None) -> dict[str, str]:
    """Every chart that has data: {name: file name in out_dir}."""
    made = {
        "bleu_vs_lagging": bleu_vs_lagging(simul or {}, out_dir / "bleu_vs_lagging.png"),
        "bleu_vs_time": bleu_vs_time(runs, out_dir / "bleu_vs_time.png", peers),
        "memory_vs_length": memory_vs_length(bench, out_dir / "memory_vs_length.png"),
        "latency_vs_position": latency_vs_position(bench, out_dir / "latency_vs_position.png"),
        "throughput": throughput_bars(runs, bench, out_dir / "throughput.png"),
    }
    return {k: v for k, v in made.items() if v}
