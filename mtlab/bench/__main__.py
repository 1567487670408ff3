"""Benchmark training throughput, memory against sequence length and decoding speed; print a table.

python -m mtlab.bench [models=[lstm,transformer]] [device=auto|cpu|cuda] [precisions=[32,bf16]]
                   [sections=[throughput,memory,decoding]] [memory.lengths=[64,128,256]] [throughput.steps=8]
                   [+ckpts.transformer=PATH +ckpts.lstm=PATH]
Writes bench.json (and the printed table as bench.txt) into the Hydra run folder (outputs/bench/<date>/).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mt.api import CONF_DIR


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="bench")
def main(cfg: DictConfig) -> None:
    from mt.api import atomic_write_text, one_line_errors
    from mtlab.bench.run import run_bench
    from mtlab.bench.table import render

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    with one_line_errors():
        results = run_bench(cfg, out_dir, list(HydraConfig.get().overrides.task))
    text = render(results)
    atomic_write_text(out_dir / "bench.txt", text)
    print(text + f"\nwritten: {out_dir / 'bench.json'}", flush=True)


if __name__ == "__main__":
    main()
