"""Evaluate or use a checkpoint: python evaluate.py ckpt=PATH [split=test] [input=FILE|- output=FILE|-]"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from mt.errors import one_line_errors
    from mt.evaluate import decode_override_keys, evaluate
    from mt.runtime import apply

    apply(cfg.runtime)
    with one_line_errors():  # decode settings: the model's own (as trained or exported), then the command line's
        evaluate(cfg, decode_keys=decode_override_keys(list(HydraConfig.get().overrides.task)))


if __name__ == "__main__":
    main()
