"""``python train.py`` / ``python -m mt.cli.train``: train a model from the composed ``conf/train.yaml``."""

import hydra
from omegaconf import DictConfig

from mt.config import CONF_DIR


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from mt.errors import one_line_errors
    from mt.pipeline import train
    from mt.runtime import apply

    apply(cfg.runtime)

    with one_line_errors():
        return train(cfg).best_bleu


if __name__ == "__main__":
    main()
