"""python -m mt.export ckpt=PATH out=DIR [format=hf|ctranslate2] [quantization=int8] (conf/export.yaml)"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    from mt.errors import one_line_errors
    from mt.export.command import export

    with one_line_errors():
        export(cfg)


if __name__ == "__main__":
    main()
