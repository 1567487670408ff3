"""Evaluate or use a checkpoint: python evaluate.py ckpt=PATH [split=test] [input=FILE|- output=FILE|-]"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from mt.errors import one_line_errors
    from mt.evaluate import evaluate
    from mt.runtime import apply

    apply(cfg.runtime)
    with one_line_errors():
        evaluate(cfg)


if __name__ == "__main__":
    main()
