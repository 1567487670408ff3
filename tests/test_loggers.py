"""Loggers, one config file each: logger=tensorboard|csv|wandb|mlflow|many (many = tensorboard + csv, the default)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mt.config_check import check_config
from mt.errors import ConfigError
from tests.utils import CONF, ROOT, SHARED_DATA, compose_train

TARGETS = {"tensorboard": "lightning.pytorch.loggers.TensorBoardLogger",
           "csv": "lightning.pytorch.loggers.CSVLogger",
           "wandb": "lightning.pytorch.loggers.WandbLogger",
           "mlflow": "lightning.pytorch.loggers.MLFlowLogger"}
PACKAGES = {"wandb": "wandb", "mlflow": "mlflow"}


def target_class(path: str) -> type:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_each_logger_is_one_file_whose_keys_its_class_takes(name):
    cfg = compose_train([f"logger={name}", "paths.output_dir=/tmp/run"])
    assert list(cfg.logger) == [name] and cfg.logger[name]._target_ == TARGETS[name]
    node = OmegaConf.to_container(cfg.logger[name], resolve=True)
    params = inspect.signature(target_class(node.pop("_target_")).__init__).parameters
    assert set(node) <= set(params), set(node) - set(params)
    where = [str(v) for k, v in node.items() if k in ("save_dir", "tracking_uri", "artifact_location")]
    assert where and all("/tmp/run/" in f"{w}/" for w in where), where  # everything goes into the run folder


def test_many_is_tensorboard_and_csv_and_the_default():
    default = compose_train(["paths.output_dir=/tmp/run"]).logger
    assert list(default) == ["tensorboard", "csv"]
    assert default == compose_train(["logger=many", "paths.output_dir=/tmp/run"]).logger
    for name in ("tensorboard", "csv"):
        assert default[name] == compose_train([f"logger={name}", "paths.output_dir=/tmp/run"]).logger[name]


def test_offline_into_the_run_folder():
    wandb = compose_train(["logger=wandb", "paths.output_dir=/tmp/run"]).logger.wandb
    assert wandb.offline is True and wandb.log_model is False and wandb.save_dir == "/tmp/run"
    mlflow = compose_train(["logger=mlflow", "paths.output_dir=/tmp/run"]).logger.mlflow
    assert mlflow.tracking_uri == "sqlite:////tmp/run/mlflow.db"  # no server (MLflow 3 refuses a file store)
    assert mlflow.artifact_location == "/tmp/run/mlartifacts" and mlflow.log_model is False


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_missing_logger_package_is_one_line(name):
    if importlib.util.find_spec(PACKAGES[name]) is not None:
        pytest.skip(f"{PACKAGES[name]} is installed here")
    with pytest.raises(ConfigError) as e:
        check_config(compose_train([f"logger={name}", "paths.output_dir=/tmp/run"]))
    message = str(e.value)
    assert "\n" not in message
    assert f"logger.{name} ({TARGETS[name]}) needs the {PACKAGES[name]} package" in message
    assert f"pip install {PACKAGES[name]}" in message


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_missing_logger_package_from_the_cli_before_any_work(tmp_path):
    r = subprocess.run([sys.executable, "train.py", "logger=wandb", f"hydra.run.dir={tmp_path / 'run'}",
                        f"paths.cache_dir={tmp_path / 'cache'}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(errors) == 1, r.stderr[-2000:]
    assert "pip install wandb" in errors[0] and not (tmp_path / "cache").exists()


def test_one_step_run_writes_tensorboard_and_csv_logs(tmp_path):
    from mt.pipeline import train

    out = tmp_path / "run"
    train(compose_train(["debug=tiny", "logger=many", "trainer.max_steps=1", "test_after_fit=false",
                         f"paths.data_dir={SHARED_DATA}", f"paths.cache_dir={tmp_path / 'cache'}",
                         f"paths.output_dir={out}"]))
    events = list((out / "tb" / "version_0").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    rows = (out / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    assert "train/loss" in rows[0] and len(rows) >= 2


def test_logger_files_and_options_agree():
    files = {p.stem for p in (Path(CONF) / "logger").glob("*.yaml")}
    assert files == {*TARGETS, "many"}
