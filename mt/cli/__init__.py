"""Command-line entry points of the library (Hydra apps over ``conf/``); the root scripts call these."""
