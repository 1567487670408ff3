"""Verdicts on the claims of the comparison, computed from the measured numbers only.

Each verdict is "holds", "does not hold", or "not measured" (a section was left out or a number is missing),
with the numbers that decided it.
"""

from __future__ import annotations

from omegaconf import DictConfig

HOLDS, FAILS, MISSING = "holds", "does not hold", "not measured"


def _verdict(number: int, claim: str, ok: bool | None, evidence: str) -> dict:
    return {"id": number, "claim": claim, "verdict": MISSING if ok is None else HOLDS if ok else FAILS,
            "evidence": evidence}


def _m(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 1e6:.2f}M"


def _s(seconds: float | None) -> str:
    return "not reached" if seconds is None else f"{seconds / 60:.1f} min"


def claim_bleu(t: dict, r: dict, tol: float) -> dict:
    claim = "At matched parameter counts the Transformer reaches a higher test BLEU than the LSTM"
    pt, pr = t["params"], r["params"]
    if not pt or not pr or not t["test"] or not r["test"]:
        return _verdict(1, claim, None, "parameter counts or test scores missing")
    gap = abs(pt - pr) / max(pt, pr)
    matched = gap <= tol
    sets = sorted(set(t["test"]) & set(r["test"]))
    higher = [t["test"][s]["bleu"] > r["test"][s]["bleu"] for s in sets]
    scores = "; ".join(f"{s}: {t['test'][s]['bleu']:.2f} vs {r['test'][s]['bleu']:.2f} BLEU" for s in sets)
    evidence = (f"parameters {_m(pt)} vs {_m(pr)} ({gap:.1%} apart, {'within' if matched else 'outside'} the "
                f"{tol:.0%} tolerance); test {scores} (Transformer vs LSTM)")
    return _verdict(1, claim, bool(sets) and matched and all(higher), evidence)


def claim_time_to_bleu(t: dict, r: dict) -> dict:
    claim = "The Transformer reaches a given validation BLEU sooner in wall-clock time"
    parts, ok = [], True
    reached_any = False
    for level, tt in t["time_to_bleu"].items():
        tr = r["time_to_bleu"][level]
        if tt is None and tr is None:
            continue
        reached_any = True
        parts.append(f"BLEU {level}: {_s(tt)} vs {_s(tr)}")
        ok = ok and tt is not None and (tr is None or tt < tr)
    if not reached_any:
        return _verdict(2, claim, False, "neither model reached any of the BLEU levels "
                        f"{', '.join(t['time_to_bleu'])}")
    return _verdict(2, claim, ok, "; ".join(parts) + " (Transformer vs LSTM; validation time included)")


def claim_tokens_per_second(t: dict, r: dict) -> dict:
    claim = "Transformer training is faster per token (target tokens/s)"
    bt, br = t["bench_tok_s_pipeline"] or t["bench_tok_s_bare"], r["bench_tok_s_pipeline"] or r["bench_tok_s_bare"]
    lt, lr = t["train_tok_s_median"], r["train_tok_s_median"]
    log_part = ("training logs (median): n/a" if lt is None or lr is None else
                f"training logs (median): {lt:,.0f} vs {lr:,.0f} tok/s")
    if bt is not None and br is not None:
        agree = "" if lt is None or lr is None or (lt > lr) == (bt > br) else " (the training logs disagree)"
        return _verdict(3, claim, bt > br, f"benchmark (real batches, {t['bench_precision']}): {bt:,.0f} vs "
                        f"{br:,.0f} tok/s; {log_part}{agree} (Transformer vs LSTM)")
    if lt is not None and lr is not None:
        return _verdict(3, claim, lt > lr, f"{log_part} (Transformer vs LSTM; no benchmark figure)")
    return _verdict(3, claim, None, "no throughput measured")


def claim_memory(bench: dict, roles: dict, c: DictConfig) -> dict:
    claim = ("Transformer training memory grows faster than linear with sequence length with explicit attention "
             "but ~linearly with fused attention; the LSTM's grows ~linearly")
    curves = {(x["preset"], x["attention"]): x for x in bench.get("memory", {}).get("curves", [])}
    math_c = curves.get((roles["transformer"], "math"))
    sdpa_c = curves.get((roles["transformer"], "sdpa"))
    rnn_c = curves.get((roles["recurrent"], "n/a"))
    if not (math_c and sdpa_c and rnn_c) or None in (math_c["exponent"], sdpa_c["exponent"], rnn_c["exponent"]):
        return _verdict(4, claim, None, "memory curves (or their growth exponents) missing")
    lin, sup = float(c.linear_max_exponent), float(c.superlinear_min_exponent)
    ok = math_c["exponent"] >= sup and sdpa_c["exponent"] <= lin and rnn_c["exponent"] <= lin
    top = max(p["length"] for p in math_c["points"] if p["bytes"])
    evidence = (f"growth exponents (log bytes vs log length, upper half of the lengths): explicit attention "
                f"{math_c['exponent']:.2f} (>= {sup:g} wanted), fused SDPA {sdpa_c['exponent']:.2f} (kernel "
                f"{sdpa_c['backend']}; <= {lin:g} wanted), LSTM {rnn_c['exponent']:.2f} (<= {lin:g} wanted); "
                f"{math_c['metric']}, longest explicit-attention length measured {top}")
    return _verdict(4, claim, ok, evidence)


def claim_latency(bench: dict, roles: dict, c: DictConfig) -> dict:
    decoding = bench.get("decoding", {})
    target = float(bench.get("config", {}).get("targets", {}).get("cache_speedup", 3))
    at = bench.get("config", {}).get("decoding", {}).get("latency_at", 100)
    claim = ("The LSTM decodes token by token with constant per-token latency while the uncached Transformer's "
             f"grows with position; the cached Transformer is at least {target:g}x faster than uncached at "
             f"{at} tokens")
    curves = {x["name"]: x for x in decoding.get("latency", [])}
    rnn = curves.get(roles["recurrent"])
    uncached = curves.get(f"{roles['transformer']} uncached")
    speed = decoding.get("cache_speedup", {}).get(roles["transformer"])
    if not (rnn and uncached and speed):
        return _verdict(5, claim, None, "latency curves missing")
    const, grow = float(c.constant_latency_max_growth), float(c.growing_latency_min_growth)
    ok = rnn["growth"] <= const and uncached["growth"] >= grow and speed["ratio"] >= target
    n = len(rnn["ms"])
    evidence = (f"latency of the last tenth of positions 1..{n} over the first tenth: LSTM {rnn['growth']:.2f}x "
                f"(<= {const:g} wanted), uncached Transformer {uncached['growth']:.2f}x (>= {grow:g} wanted); "
                f"around position {speed['at']}: cached {speed['cached_ms']:.2f} ms vs uncached "
                f"{speed['uncached_ms']:.2f} ms per step = {speed['ratio']:.1f}x (>= {target:g} wanted)")
    return _verdict(5, claim, ok, evidence)


def verdicts(runs: dict[str, dict], roles: dict[str, str], bench: dict, c: DictConfig) -> list[dict]:
    """The five claims, in order; empty without one Transformer and one recurrent model."""
    if not roles:
        return []
    t, r = runs[roles["transformer"]], runs[roles["recurrent"]]
    return [claim_bleu(t, r, float(c.param_tolerance)), claim_time_to_bleu(t, r), claim_tokens_per_second(t, r),
            claim_memory(bench, roles, c), claim_latency(bench, roles, c)]
