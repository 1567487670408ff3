"""Train a translation model: python train.py [model=lstm] [data.src=de data.tgt=en] [trainer.max_epochs=...]"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from mt.errors import one_line_errors
    from mt.pipeline import train

    with one_line_errors():
        return train(cfg).best_bleu


if __name__ == "__main__":
    main()
