"""Is a trained model slower to train than a fresh one on the same batches, and do denormal floats explain it?

A diagnostic for the within-run slowdown of issue 9 (docs/sweeps/throughput.md), not a benchmark: it takes the
first ``--batches`` training batches of ``experiment=multi30k_transformer`` and times training steps on them
(bf16 autocast, AdamW, clipping) for a fresh model and for one resumed from a checkpoint (its raw weights and
optimizer state), with flush-to-zero of denormals off and on (``torch.set_flush_denormal``), alternating the four
conditions for ``--rounds`` rounds in one process so machine drift hits them alike. Also counts the denormal
values in the checkpoint's weights and optimizer state.

    python tools/age_probe.py CKPT [--batches 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from probe_common import first_batches, train_step

from mt.api import compose
from mt.pipeline import build_module
from mt.runtime import apply

TINY = torch.finfo(torch.float32).tiny


def denormals(tensors) -> tuple[int, int]:
    """(denormal values, all values) over the floating-point tensors."""
    d = n = 0
    for t in tensors:
        if torch.is_tensor(t) and t.is_floating_point():
            t = t.float()
            d += int(((t != 0) & (t.abs() < TINY)).sum())
            n += t.numel()
    return d, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cfg = compose("train", ["experiment=multi30k_transformer"])
    apply(cfg.runtime)
    dm, batches = first_batches(cfg, args.batches)
    ckpt = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    raw = ckpt.get("current_model_state", ckpt["state_dict"])
    opt_state = ckpt["optimizer_states"][0]
    print(json.dumps({"ckpt": args.ckpt, "step": ckpt.get("global_step"),
                      "denormal_weights": denormals(raw.values()),
                      **{f"denormal_{k}": denormals(s[k] for s in opt_state["state"].values())
                         for k in ("exp_avg", "exp_avg_sq")}}), flush=True)
    runs = {}
    for name in ("fresh", "trained"):
        torch.manual_seed(int(cfg.seed))
        module = build_module(cfg, dm.tokenizer.vocab_size)
        conf = module.configure_optimizers()
        optimizer, schedule = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
        if name == "trained":
            module.load_state_dict(raw)
            optimizer.load_state_dict(opt_state)
            schedule.load_state_dict(ckpt["lr_schedulers"][0])
        runs[name] = (module.model.train(), optimizer, schedule)

    def steps(name: str, n: int) -> float:
        model, optimizer, schedule = runs[name]
        tokens, start = 0, time.perf_counter()
        for i in range(n):
            tokens += train_step(model, optimizer, schedule, batches[i % len(batches)], cfg)
        return tokens / (time.perf_counter() - start)

    for name in runs:  # warm-up: oneDNN primitives for every batch shape, both models
        steps(name, len(batches))
    results: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for flush in (False, True) if r % 2 == 0 else (True, False):
            torch.set_flush_denormal(flush)
            for name in runs if r % 2 == 0 else reversed(list(runs)):
                key = f"{name}_flush{int(flush)}"
                results.setdefault(key, []).append(round(steps(name, len(batches))))
                print(json.dumps({"round": r, "condition": key, "tok_s": results[key][-1]}), flush=True)
    torch.set_flush_denormal(False)
    median = {k: sorted(v)[len(v) // 2] for k, v in results.items()}
    print(json.dumps({"median_tok_s": median,
                      "trained_over_fresh_flush0": round(median["trained_flush0"] / median["fresh_flush0"], 3),
                      "trained_over_fresh_flush1": round(median["trained_flush1"] / median["fresh_flush1"], 3)}))


if __name__ == "__main__":
    main()
