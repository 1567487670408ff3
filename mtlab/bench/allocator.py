"""What the allocator setting (``runtime.tune_malloc``, :func:`mt.runtime.tune_malloc`) does to training speed.

The setting is process-wide and cannot be undone inside a process, so each measurement is a fresh child process
(``python -m mtlab.bench.allocator PRESET PRECISION TUNE STEPS``) running the bare training loop of the throughput
section on fixed synthetic batches; runs with and without the setting alternate ``repeats`` times (order flipped
each time, so drifts of a shared machine hit both alike) and the medians are compared.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass

from omegaconf import DictConfig


@dataclass
class AllocatorRow:
    preset: str
    precision: str
    default_tok_s: float  # glibc's default malloc behaviour
    tuned_tok_s: float  # runtime.tune_malloc
    speedup: float  # tuned / default (medians)
    default_runs: list[float]
    tuned_runs: list[float]

    def as_dict(self) -> dict:
        return asdict(self)


def _child(preset: str, precision: str, tune: bool, cfg: DictConfig, threads: int | None) -> float:
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    args = [preset, precision, "1" if tune else "0", str(cfg.steps), str(cfg.batch), str(cfg.length)]
    out = subprocess.run([sys.executable, "-m", "mtlab.bench.allocator", *args], capture_output=True, text=True,
                         env=env, timeout=1800, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"allocator child {args} failed: {out.stderr[-1500:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["tok_s"])


def measure_allocator(presets: list[str], precisions: list[str], cfg: DictConfig, threads: int | None) -> dict:
    """Rows of default vs tuned allocator, per preset and precision."""
    rows = []
    for preset in presets:
        for precision in precisions:
            runs: dict[bool, list[float]] = {False: [], True: []}
            for r in range(int(cfg.repeats)):
                for tune in ((False, True) if r % 2 == 0 else (True, False)):
                    runs[tune].append(round(_child(preset, precision, tune, cfg, threads), 1))
            d, t = statistics.median(runs[False]), statistics.median(runs[True])
            rows.append(AllocatorRow(preset, precision, d, t, round(t / d, 3), runs[False], runs[True]).as_dict())
    return {"steps": int(cfg.steps), "batch": int(cfg.batch), "length": int(cfg.length),
            "repeats": int(cfg.repeats), "rows": rows}


def _main(preset: str, precision: str, tune: str, steps: str, batch: str, length: str) -> None:
    import time

    import torch

    from mt.api import build_module, compose
    from mt.runtime import tune_malloc
    from mtlab.bench.models import ModelSpec
    from mtlab.bench.throughput import bare_run, synthetic_batches

    if tune == "1" and not tune_malloc():
        raise SystemExit("tune_malloc is not available here (not glibc)")
    cfg = compose("train", [f"model={preset}"])
    torch.manual_seed(0)
    module = build_module(cfg, 8000)
    batches = synthetic_batches(int(steps) + 2, int(batch), int(length), 8000, seed=0)
    times = bare_run(ModelSpec(preset, cfg, None), module, batches, precision, torch.device("cpu"))
    tokens = sum(b.n_tgt_tokens for b in batches[2:])
    print(json.dumps({"tok_s": tokens / (times[-1] - times[2]), "at": time.time()}))


if __name__ == "__main__":
    _main(*sys.argv[1:])
