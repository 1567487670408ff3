"""Compare matched presets end to end and write REPORT.md, results.json and plots into output_dir.

python -m mtlab.compare                                  # Multi30k en-de, models=[lstm,transformer], conf/compare.yaml
python -m mtlab.compare parallel=true                    # a seed's runs at once, the cores shared out
python -m mtlab.compare seeds=[1,2,3] parallel=2         # two runs at once, the next as soon as one ends
python -m mtlab.compare ... status=true                  # where each run stands (same overrides); trains nothing
python -m mtlab.compare data.src=de data.tgt=en          # data/paths/decode overrides go to every train.py run too
python -m mtlab.compare models=[lstm_base,transformer_base] data=hf data.path=wmt14 data.config=de-en \
    data.src=de data.tgt=en 'train_overrides=["trainer.precision=bf16-mixed","trainer.max_epochs=20"]' \
    'bench_overrides=["memory.max_gib=40"]'          # full scale on a GPU (quote list items that contain '=')

Runs train.py for each model into <output_dir>/runs/<preset> (finished runs are kept, interrupted ones resume
from last.ckpt), benchmarks the trained checkpoints, then writes the report. Re-running only redoes what changed.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mt.api import CONF_DIR


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="compare")
def main(cfg: DictConfig) -> None:
    from mt.api import one_line_errors
    from mtlab.compare.run import compare, run_status

    with one_line_errors():
        if cfg.status:
            print("\n".join(run_status(cfg, list(HydraConfig.get().overrides.task))), flush=True)
            return
        results = compare(cfg, list(HydraConfig.get().overrides.task))
    out = Path(results["output_dir"])
    for c in results["claims"]:
        print(f"({c['id']}) {c['verdict'].upper()}: {c['claim']}. {c['evidence']}")
    print(f"report: {out / 'REPORT.md'}\nresults: {out / 'results.json'}", flush=True)


if __name__ == "__main__":
    main()
