"""Does a fixed amount of training work get slower as the process ages, and a fixed matrix product with it?

A diagnostic for the within-run slowdown of issue 9 (docs/sweeps/throughput.md, "Session 14"), not a benchmark:
it cycles the first 240 training batches of ``experiment=multi30k_transformer`` (about one epoch) through a bare
training loop (bf16 autocast, AdamW and schedule, clipping) and, once a minute, prints the loop's target tokens/s,
3 s of 1024^3 bf16 matrix products (the machine), the peak RSS and, with ``--census``, the Python-visible tensors.

    python tools/drift_probe.py --minutes 8 [--no-tune-malloc] [--census]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import time

import torch
from probe_common import first_batches, train_step

from mt.api import compose
from mt.pipeline import build_module
from mt.runtime import apply


def matmul_gflops(a: torch.Tensor, b: torch.Tensor, seconds: float = 3.0) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * a.shape[0] ** 3 * n / (time.perf_counter() - start) / 1e9


def census() -> dict:
    objects = gc.get_objects()
    tensors = [o for o in objects if isinstance(o, torch.Tensor)]
    return {"gc_objects": len(objects), "tensors": len(tensors),
            "tensor_mb": round(sum(t.untyped_storage().nbytes() for t in tensors) / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--no-tune-malloc", action="store_true", help="runtime.tune_malloc=false")
    parser.add_argument("--census", action="store_true", help="also count Python-visible tensors each minute")
    args = parser.parse_args()
    cfg = compose("train", ["experiment=multi30k_transformer", f"runtime.tune_malloc={not args.no_tune_malloc}"])
    apply(cfg.runtime)
    dm, batches = first_batches(cfg, 240)
    torch.manual_seed(int(cfg.seed))
    module = build_module(cfg, dm.tokenizer.vocab_size)
    model = module.model.train()
    conf = module.configure_optimizers()
    optimizer, schedule = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    a, b = torch.randn(1024, 1024).bfloat16(), torch.randn(1024, 1024).bfloat16()
    print(json.dumps({"minute": 0, "matmul_gflops": round(matmul_gflops(a, b), 1)}), flush=True)
    start = mark = time.perf_counter()
    tokens = steps = 0
    while time.perf_counter() - start < args.minutes * 60:
        tokens += train_step(model, optimizer, schedule, batches[steps % len(batches)], cfg)
        steps += 1
        if (now := time.perf_counter()) - mark >= 60:
            row = {"minute": round((now - start) / 60, 1), "steps": steps, "tok_s": round(tokens / (now - mark)),
                   "matmul_gflops": round(matmul_gflops(a, b), 1),
                   "maxrss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
            print(json.dumps(row | (census() if args.census else {})), flush=True)
            tokens, mark = 0, time.perf_counter()


if __name__ == "__main__":
    main()
