"""Prepare the data without training and print its statistics as one JSON object.

python -m mt.data [hydra overrides, as for train.py]   e.g.  data.src=de data.tgt=en
"""

from __future__ import annotations

import json
import time

import hydra
from omegaconf import DictConfig

from mt.config import CONF_DIR
from mt.data.datamodule import TranslationDataModule
from mt.errors import one_line_errors


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> None:
    start = time.perf_counter()  # logs go to stderr (conf/hydra): stdout carries only the JSON
    with one_line_errors():
        dm = TranslationDataModule(cfg.data, cfg.paths, seed=cfg.seed)
        dm.prepare_data()
        dm.setup()
        stats = dm.stats()
    stats["prepare_seconds"] = round(time.perf_counter() - start, 3)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
