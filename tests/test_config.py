"""The Hydra config tree: composition, defaults, overrides and the errors a typo gets."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from tests.utils import ROOT, compose_train


def test_cfg_job_prints_composed_config():
    r = subprocess.run([sys.executable, "train.py", "--cfg", "job", "model=lstm", "data.src=de", "data.tgt=en"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    cfg = OmegaConf.create(r.stdout)
    assert cfg.model._target_ == "mt.models.lstm.LSTMSeq2Seq"
    assert (cfg.data.src, cfg.data.tgt) == ("de", "en")
    assert cfg.optim.schedule == "plateau"  # the LSTM's own optimizer pairing


@pytest.mark.parametrize("model, target, schedule", [
    ("transformer", "mt.models.transformer.Transformer", "inverse_sqrt"),
    ("lstm", "mt.models.lstm.LSTMSeq2Seq", "plateau"),
    ("transformer_base", "mt.models.transformer.Transformer", "inverse_sqrt"),
    ("lstm_base", "mt.models.lstm.LSTMSeq2Seq", "plateau"),
])
def test_presets_compose_with_their_optimizer(model, target, schedule):
    cfg = compose_train([f"model={model}", "paths.output_dir=/tmp/x"])
    assert cfg.model._target_ == target and cfg.optim.schedule == schedule


def test_trainer_overrides_map_to_lightning():
    cfg = compose_train(["trainer.max_steps=7", "trainer.precision=bf16-mixed", "trainer.fast_dev_run=true",
                         "trainer.devices=2", "trainer=ddp", "paths.output_dir=/tmp/x"])
    import lightning

    kwargs = OmegaConf.to_container(cfg.trainer)
    assert kwargs["strategy"] == "ddp" and kwargs["max_steps"] == 7
    import inspect  # every key must be a Trainer argument

    params = inspect.signature(lightning.Trainer.__init__).parameters
    assert set(kwargs) <= set(params)


def test_data_dir_follows_env(monkeypatch):
    monkeypatch.setenv("MT_DATA_DIR", "/some/where")
    assert compose_train(["paths.output_dir=/tmp/x"]).paths.data_dir == "/some/where"
    monkeypatch.delenv("MT_DATA_DIR")
    assert compose_train(["paths.output_dir=/tmp/x"]).paths.data_dir == "data"


@pytest.mark.parametrize("override", ["model=gru", "trainer.max_epoch=3", "data.srcc=en"])
def test_typos_are_errors_naming_the_key(override):
    with pytest.raises(ConfigCompositionException, match=override.split("=")[0].split(".")[-1]):
        compose_train([override])


def test_unknown_key_on_command_line_is_one_message():
    env = {**os.environ}
    r = subprocess.run([sys.executable, "train.py", "trainer.max_epoch=3"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode != 0 and "max_epoch" in r.stderr and "Traceback" not in r.stderr


def test_experiment_overrides_trainer():
    cfg = compose_train(["experiment=multi30k_cpu", "model=lstm", "paths.output_dir=/tmp/x"])
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.max_time == "00:00:50:00"
    assert cfg.model._target_ == "mt.models.lstm.LSTMSeq2Seq"
