"""mt: machine-translation training pipeline (LSTM+attention vs Transformer) on Lightning and Hydra."""

__version__ = "0.1.0"
