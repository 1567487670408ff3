"""Train a translation model: python train.py [model=lstm] [data.src=de data.tgt=en] [trainer.max_epochs=...]"""

from mt.cli.train import main

if __name__ == "__main__":
    main()
