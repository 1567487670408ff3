"""Shared pytest fixtures: offline Hugging Face, the shared data folder, Hydra config composition."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

# Before anything imports `datasets` / `huggingface_hub` (they read these at import time): never go online.
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
# The suite runs in one pytest-xdist worker per core (pyproject.toml): the programs its tests start get one
# OpenMP thread each, like the workers themselves (`one_thread`), so two workers never oversubscribe the cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from mt.config import compose  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def one_thread() -> Iterator[None]:
    """One intra-op thread for the whole suite: tiny models gain nothing from two, results are reproducible,
    and two-thread OpenMP slows down ~10x when the 2-core machine is shared with another process."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data`` next to the repository (raw corpora, read-only); skips the test when absent."""
    path = (REPO.parent / "shared" / "data").resolve()
    if not (path / "multi30k").is_dir():
        pytest.skip(f"shared data folder {path} with multi30k/ not found")
    return path


@pytest.fixture(scope="session")
def session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder (``paths.cache_dir``) shared by all tests of the session, so real data is prepared once."""
    return tmp_path_factory.mktemp("session_cache")


@pytest.fixture(scope="session")
def compose_cfg() -> Callable[..., DictConfig]:
    """``compose_cfg(*overrides)`` -> the composed ``conf/train.yaml`` (same overrides as train.py)."""

    def _compose(*overrides: str) -> DictConfig:
        return compose("train", overrides)

    return _compose


@pytest.fixture(scope="session")
def multi30k_datamodule(compose_cfg, shared_data_dir: Path, session_cache_dir: Path):
    """The default data config (full Multi30k en-de) prepared once per session in ``session_cache_dir``."""
    from mt.data import TranslationDataModule

    cfg = compose_cfg(f"paths.data_dir={shared_data_dir}", f"paths.cache_dir={session_cache_dir}")
    dm = TranslationDataModule(cfg.data, cfg.paths, seed=cfg.seed)
    dm.prepare_data()
    dm.setup()
    return dm
