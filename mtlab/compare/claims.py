"""Verdicts on the claims of the comparison, computed from the measured numbers only.

Each verdict is "holds", "does not hold", or "not measured" (a section was left out or a number is missing),
with the numbers that decided it.
"""

from __future__ import annotations

from omegaconf import DictConfig

from mtlab.compare.significance import seed_tests

HOLDS, FAILS, MISSING = "holds", "does not hold", "not measured"


def _verdict(number: int, claim: str, ok: bool | None, evidence: str) -> dict:
    return {"id": number, "claim": claim, "verdict": MISSING if ok is None else HOLDS if ok else FAILS,
            "evidence": evidence}


def _m(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 1e6:.2f}M"


def _s(seconds: float | None) -> str:
    return "not reached" if seconds is None else f"{seconds / 60:.1f} min"


def _significance(sig: dict, a: str, b: str, alpha: float) -> tuple[bool | None, str]:
    """Whether preset a's BLEU is significantly above preset b's (paired bootstrap; with several seeds, in every
    seed's pair of runs: a pair significant the other way counts against), and the words for it."""
    tests = seed_tests(sig, a, b)
    if not tests:
        return None, "no significance test"
    wins = [t.p_value < alpha and t.score_a > t.score_b for t in tests]
    ok = all(wins)
    if len(tests) == 1:
        t = tests[0]
        return ok, (f"paired bootstrap p = {t.p_value:.4f} ({'significant' if t.p_value < alpha else 'not significant'}"
                    f" at {alpha:g})")
    against = sum(t.p_value < alpha and t.score_a <= t.score_b for t in tests)
    return ok, (f"paired bootstrap p = {' / '.join(f'{t.p_value:.4f}' for t in tests)} over {len(tests)} seeds "
                f"(significant at {alpha:g} in {sum(wins)} of {len(tests)} for {a}, in {against} for {b})")


def stop_reasons(run: dict) -> list[str]:
    """Why each of a preset's runs stopped (every seed's; results.json ``stopped_by``, 'n/a' when not recorded)."""
    return list(run["seeds"]["stopped_by"]) if run.get("seeds") and "stopped_by" in run["seeds"] else [
        run.get("stopped_by") or "n/a"]


def run_epochs(run: dict) -> list[int | None]:
    """The epochs each of a preset's runs trained (every seed's, in the order of :func:`stop_reasons`; None where
    not recorded)."""
    if run.get("seeds") and "stopped_by" in run["seeds"]:
        return list(run["seeds"].get("epochs") or [None] * len(run["seeds"]["stopped_by"]))
    return [run.get("epochs")]


def regime(*runs: dict, min_epochs: int | None = None) -> str:
    """Whether the compared runs converged or ran within a fixed budget, in words with the stop reasons per preset:
    a quality verdict means something else in each case. A run converged when early stopping ended it, or (with
    ``min_epochs``, conf/compare.yaml's claims.converged_min_epochs) when it stopped at max_epochs after at least
    that many epochs."""
    reasons = {run["preset"]: stop_reasons(run) for run in runs}
    detail = "; ".join(f"{p}: " + ", ".join(f"{why} x{n}" if n > 1 else why for why, n in
                                           sorted({w: rs.count(w) for w in rs}.items()))
                       for p, rs in reasons.items())
    flat = [why for rs in reasons.values() for why in rs]
    if all(why == "early_stopping" for why in flat):
        return f"at convergence (every run stopped by early stopping: {detail})"
    if "n/a" in flat:
        return f"budget unknown (stop reasons not recorded for every run: {detail})"
    stops = [(why, epochs) for run in runs for why, epochs in zip(stop_reasons(run), run_epochs(run), strict=True)]
    if min_epochs is not None and all(why == "early_stopping" or (why == "max_epochs" and (epochs or 0) >= min_epochs)
                                      for why, epochs in stops):
        return (f"at convergence (every run stopped by early stopping or at max_epochs after at least {min_epochs} "
                f"epochs: {detail})")
    return f"within a fixed budget, not converged (stopped by {detail})"


def test_bleu(run: dict) -> dict[str, float]:
    """Test BLEU per set: the mean over seeds when the preset ran with several, else the run's own."""
    if run.get("seeds"):
        return {name: v["bleu_mean"] for name, v in run["seeds"]["test"].items()}
    return {name: v["bleu"] for name, v in (run.get("test") or {}).items()}


def claim_bleu(t: dict, r: dict, tol: float, sig: dict | None = None, alpha: float = 0.05,
               min_epochs: int | None = None) -> dict:
    claim = "At matched parameter counts the Transformer reaches a higher test BLEU than the LSTM"
    pt, pr = t["params"], r["params"]
    if not pt or not pr or not t["test"] or not r["test"]:
        return _verdict(1, claim, None, "parameter counts or test scores missing")
    gap = abs(pt - pr) / max(pt, pr)
    matched = gap <= tol
    bt, br = test_bleu(t), test_bleu(r)
    sets = sorted(set(bt) & set(br))
    higher = [bt[s] > br[s] for s in sets]
    mean = " (means over seeds)" if t.get("seeds") and r.get("seeds") else ""
    scores = "; ".join(f"{s}: {bt[s]:.2f} vs {br[s]:.2f} BLEU" for s in sets) + mean
    significant, words = _significance(sig or {}, t["preset"], r["preset"], alpha)
    evidence = (f"parameters {_m(pt)} vs {_m(pr)} ({gap:.1%} apart, {'within' if matched else 'outside'} the "
                f"{tol:.0%} tolerance); test {scores} (Transformer vs LSTM); {words}; {regime(t, r, min_epochs=min_epochs)}")
    return _verdict(1, claim, bool(sets) and matched and all(higher) and significant is not False, evidence)


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


def claim_tokens_per_second(t: dict, r: dict, margin: float = 0.0) -> dict:
    """Holds when the Transformer's tokens/s exceed the LSTM's by more than ``margin`` (a fraction): a short
    benchmark's figures move by about that much between runs, so a smaller lead is not called a win."""
    claim = "Transformer training is faster per token (target tokens/s)"
    bt, br = t["bench_tok_s_pipeline"] or t["bench_tok_s_bare"], r["bench_tok_s_pipeline"] or r["bench_tok_s_bare"]
    lt, lr = t["train_tok_s_median"], r["train_tok_s_median"]
    log_part = ("training logs (median): n/a" if lt is None or lr is None else
                f"training logs (median): {lt:,.0f} vs {lr:,.0f} tok/s")
    wanted = f" (> {1 + margin:.2f}x wanted)" if margin else ""
    if bt is not None and br is not None:
        agree = "" if lt is None or lr is None or (lt > lr) == (bt > br) else " (the training logs disagree)"
        return _verdict(3, claim, bt > br * (1 + margin), f"benchmark (real batches, {t['bench_precision']}): "
                        f"{bt:,.0f} vs {br:,.0f} tok/s = {bt / br:.2f}x{wanted}; {log_part}{agree} "
                        "(Transformer vs LSTM)")
    if lt is not None and lr is not None:
        return _verdict(3, claim, lt > lr * (1 + margin), f"{log_part} = {lt / lr:.2f}x{wanted} (Transformer vs LSTM; "
                        "no benchmark figure)")
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


def _by_family(runs: dict[str, dict], family: str) -> str | None:
    found = [p for p, s in runs.items() if s.get("family") == family]
    return found[0] if len(found) == 1 else None


def _best_bleu(run: dict) -> float | None:
    return max(test_bleu(run).values(), default=None)


def claim_linear_memory(bench: dict, linear: str, transformer: str, c: DictConfig) -> dict:
    claim = ("Linear attention makes training memory grow ~linearly with sequence length, with a smaller constant "
             "than softmax attention with an explicit attention matrix")
    curves = {c_["name"]: c_ for c_ in bench.get("memory", {}).get("curves", [])}
    lin = curves.get(f"{linear} sdpa") or curves.get(linear)
    exp_ = curves.get(f"{transformer} math")
    if not (lin and exp_) or lin["exponent"] is None:
        return _verdict(6, claim, None, "memory curves of the linear Transformer or the explicit-matrix Transformer "
                        "missing")
    both = {p["length"]: p["bytes"] for p in lin["points"] if p["bytes"]}
    common = [p["length"] for p in exp_["points"] if p["bytes"] and p["length"] in both]
    if not common:
        return _verdict(6, claim, None, "no length measured for both curves")
    n = max(common)
    b_lin, b_exp = both[n], next(p["bytes"] for p in exp_["points"] if p["length"] == n)
    top = max(both)
    ok = lin["exponent"] <= float(c.linear_max_exponent) and b_lin < b_exp
    return _verdict(6, claim, ok, f"growth exponent of {lin['name']} {lin['exponent']:.2f} (<= "
                    f"{float(c.linear_max_exponent):g} wanted) up to {top} tokens ({both[top] / 2**20:,.0f} MiB); at "
                    f"{n} tokens {b_lin / 2**20:,.0f} MiB vs {b_exp / 2**20:,.0f} MiB for softmax with an explicit "
                    f"matrix; {lin['metric']}")


def claim_constant_state(bench: dict, runs: dict[str, dict], c: DictConfig) -> dict:
    claim = ("Models that declare a constant decoder state (LSTM, linear Transformer, hybrid) decode with flat "
             "per-token latency and state memory, while the cached Transformer's state grows with position")
    curves = bench.get("decoding", {}).get("latency", [])
    default: dict[str, dict] = {}  # each model's default decoding variant (its first curve)
    for x in curves:
        default.setdefault(x["preset"], x)
    const = [x for x in default.values() if x["decoder_state"] == "constant"]
    growing = [x for x in curves if x["decoder_state"] == "growing" and x["variant"] == "cached"]
    if not const or not growing or not all(x.get("state_bytes") for x in const + growing):
        return _verdict(7, claim, None, "latency curves with state sizes missing")
    limit = float(c.constant_latency_max_growth)
    flat = all(x["growth"] <= limit and x["state_bytes"][-1] == x["state_bytes"][0] for x in const)
    grows = all(x["state_bytes"][-1] > x["state_bytes"][0] for x in growing)
    n = len(const[0]["ms"])
    parts = [f"{x['name']}: latency {x['growth']:.2f}x, state {x['state_bytes'][0] / 1024:,.0f} -> "
             f"{x['state_bytes'][-1] / 1024:,.0f} KiB" for x in const + growing]
    return _verdict(7, claim, flat and grows, f"last tenth over first tenth of positions 1..{n} (<= {limit:g} "
                    f"wanted for constant-state models): " + "; ".join(parts))


def claim_hybrid(runs: dict[str, dict], c: DictConfig) -> dict:
    claim = ("The hybrid (Transformer encoder, LSTM decoder; Chen et al. 2018) reaches the highest test BLEU of the "
             "matched models")
    hybrid = _by_family(runs, "hybrid")
    scores = {p: _best_bleu(s) for p, s in runs.items()}
    if hybrid is None or None in scores.values():
        return _verdict(8, claim, None, "a hybrid run or test scores missing")
    sizes = [s["params"] for s in runs.values()]
    gap = (max(sizes) - min(sizes)) / max(sizes)
    ok = all(scores[hybrid] > v for p, v in scores.items() if p != hybrid) and gap <= float(c.param_tolerance)
    listed = ", ".join(f"{p} {v:.2f}" for p, v in sorted(scores.items(), key=lambda kv: -kv[1]))
    return _verdict(8, claim, ok, f"test BLEU {listed}; parameter counts {gap:.1%} apart at most; "
                    f"{regime(*runs.values(), min_epochs=_min_epochs(c))}")


def claim_linear_bleu(runs: dict[str, dict], linear: str | None, transformer: str, c: DictConfig,
                      sig: dict | None = None) -> dict:
    gap_max = float(c.linear_bleu_gap)
    claim = f"Linear attention costs at most {gap_max:g} BLEU against softmax attention at matched size"
    if linear is None or _best_bleu(runs[linear]) is None or _best_bleu(runs[transformer]) is None:
        return _verdict(9, claim, None, "a linear-Transformer run or test scores missing")
    bl, bt = test_bleu(runs[linear]), test_bleu(runs[transformer])
    sets = sorted(set(bl) & set(bt))
    gaps = {s: bt[s] - bl[s] for s in sets}
    evidence = "; ".join(f"{s}: {bl[s]:.2f} vs {bt[s]:.2f}" for s in sets)
    _, words = _significance(sig or {}, linear, transformer, float(c.significance_alpha))
    return _verdict(9, claim, bool(sets) and all(g <= gap_max for g in gaps.values()),
                    f"test BLEU linear vs softmax Transformer: {evidence}; {words}; "
                    f"{regime(runs[linear], runs[transformer], min_epochs=_min_epochs(c))}")


def _min_epochs(c: DictConfig) -> int | None:
    """claims.converged_min_epochs (null: only early stopping counts as convergence)."""
    value = c.get("converged_min_epochs")
    return None if value is None else int(value)


def verdicts(runs: dict[str, dict], roles: dict[str, str], bench: dict, c: DictConfig,
             sig: dict | None = None) -> list[dict]:
    """The claims, in order: 1-5 LSTM vs Transformer, 6-9 the linear and hybrid variants (when they ran);
    empty without one Transformer and one recurrent model."""
    if not roles:
        return []
    t, r = runs[roles["transformer"]], runs[roles["recurrent"]]
    out = [claim_bleu(t, r, float(c.param_tolerance), sig, float(c.significance_alpha), _min_epochs(c)),
           claim_time_to_bleu(t, r), claim_tokens_per_second(t, r, float(c.speed_margin)),
           claim_memory(bench, roles, c), claim_latency(bench, roles, c)]
    linear = _by_family(runs, "linear_transformer")
    if linear is not None:
        out += [claim_linear_memory(bench, linear, roles["transformer"], c)]
    if linear is not None or _by_family(runs, "hybrid") is not None:
        out += [claim_constant_state(bench, runs, c)]
    if _by_family(runs, "hybrid") is not None:
        out += [claim_hybrid(runs, c)]
    if linear is not None:
        out += [claim_linear_bleu(runs, linear, roles["transformer"], c, sig)]
    return out


def _curve(simul: dict, family: str, streaming: bool) -> dict | None:
    found = [c for c in simul.get("curves", []) if c["family"] == family and c["streaming"] == streaming]
    return found[0] if len(found) == 1 else None


def _at_k(curve: dict) -> dict[object, dict]:
    return {p["k"]: p for p in curve["points"]}


def claim_stream_cost(bench: dict, c: DictConfig) -> dict:
    claim = ("Streaming: the recurrent model's state and per-source-token cost stay constant as the stream grows, "
             "while the Transformer's grow with what it has read")
    growth = bench.get("streaming", {}).get("growth", {})
    rnn = next((v for k, v in growth.items() if "lstm" in k), None) if growth else None
    tfm = next((v for k, v in growth.items() if "transformer" in k), None) if growth else None
    if rnn is None or tfm is None:
        return _verdict(10, claim, None, "the streaming section of the benchmark is missing")
    limit = float(c.stream_flat_max_growth)
    lengths = bench["streaming"]["lengths"]
    rnn_flat = rnn["encoder_state_growth"] == 1.0 and rnn["token_min_ms_growth"] <= limit
    rnn_const_state = rnn["decoder_state_growth"] == 1.0
    tfm_grows = tfm["encoder_state_growth"] > 1.0
    evidence = (f"from {lengths[0]} to {lengths[-1]} source tokens: LSTM encoder state x{rnn['encoder_state_growth']:g}, "
                f"its decoder state (attention memory and keys) x{rnn['decoder_state_growth']:g}, fastest per-token "
                f"time x{rnn['token_min_ms_growth']:g}; Transformer encoder K/V cache x{tfm['encoder_state_growth']:g}, "
                f"decoder state x{tfm['decoder_state_growth']:g}, fastest per-token time x{tfm['token_min_ms_growth']:g} "
                f"(<= {limit:g} counts as flat)")
    if rnn_flat and not rnn_const_state:
        evidence += ("; the recurrent encoder is constant-size, but the attentional decoder keeps every source state, "
                     "so the whole model's state grows linearly like the Transformer's")
    return _verdict(10, claim, rnn_flat and rnn_const_state and tfm_grows, evidence)


def claim_stream_quality(simul: dict) -> dict:
    claim = "At the same wait-k lag, the streaming LSTM translates better than the streaming Transformer"
    rnn, tfm = _curve(simul, "recurrent", True), _curve(simul, "transformer", True)
    if rnn is None or tfm is None:
        return _verdict(11, claim, None, "BLEU-lag curves of both streaming runs missing")
    a, b = _at_k(rnn), _at_k(tfm)
    ks = [k for k in a if k in b]
    parts = [f"k={k}: {a[k]['bleu']:.2f} (AL {a[k]['al']:.2f}) vs {b[k]['bleu']:.2f} (AL {b[k]['al']:.2f})"
             for k in ks]
    return _verdict(11, claim, bool(ks) and all(a[k]["bleu"] > b[k]["bleu"] for k in ks),
                    f"test BLEU, {rnn['preset']} vs {tfm['preset']}: " + "; ".join(parts))


def claim_wait_k_training(simul: dict) -> dict:
    claim = "Training with wait-k beats test-time wait-k on a full-sentence model at the same k"
    parts, ok, seen = [], True, False
    for family in ("recurrent", "transformer"):
        trained, baseline = _curve(simul, family, True), _curve(simul, family, False)
        if trained is None or baseline is None:
            continue
        a, b = _at_k(trained), _at_k(baseline)
        ks = [k for k in a if k in b and k != "full"]
        seen = seen or bool(ks)
        ok = ok and all(a[k]["bleu"] > b[k]["bleu"] for k in ks)
        parts.append(f"{family}: " + ", ".join(f"k={k} {a[k]['bleu']:.2f} vs {b[k]['bleu']:.2f}" for k in ks))
    if not seen:
        return _verdict(12, claim, None, "no family has both a wait-k trained and a full-sentence run")
    return _verdict(12, claim, ok, "test BLEU, wait-k trained streaming run vs test-time wait-k: " + "; ".join(parts))


def streaming_verdicts(simul: dict, bench: dict, c: DictConfig) -> list[dict]:
    """Claims 10-12 (the seed's streaming claim), when the simultaneous curves or the streaming benchmark exist."""
    if not simul and "streaming" not in bench:
        return []
    return [claim_stream_cost(bench, c), claim_stream_quality(simul or {}), claim_wait_k_training(simul or {})]
