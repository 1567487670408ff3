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
    assert cfg.trainer.precision == "auto" and cfg.trainer.max_time == "00:00:50:00"
    assert cfg.model._target_ == "mt.models.lstm.LSTMSeq2Seq"


@pytest.mark.parametrize("recipe, target, schedule, lr, warmup", [
    ("multi30k_transformer", "mt.models.transformer.Transformer", "inverse_sqrt", 2e-3, 200),
    ("multi30k_lstm", "mt.models.lstm.LSTMSeq2Seq", "plateau", 2e-3, 200),
])
def test_recipes_bring_their_model_and_its_optimizer(recipe, target, schedule, lr, warmup):
    """A per-architecture recipe sets the model, so the optimizer group (``optim: ${model}``) follows it."""
    from mt.config_check import check_config

    cfg = compose_train([f"experiment={recipe}", "paths.output_dir=/tmp/x"])
    check_config(cfg)
    assert (cfg.model._target_, cfg.optim.schedule, cfg.optim.lr, cfg.optim.warmup_steps) == (
        target, schedule, lr, warmup)
    assert cfg.data.max_tokens == 2048 and cfg.trainer.max_time == "00:00:40:00"
    assert "ema" in cfg.callbacks  # both recipes average their weights (docs/sweeps: sessions 14 and 18)
    assert cfg.decode.len_penalty == 1.0  # chosen on validation (docs/results: sessions 21-24)
    assert {"checkpoint", "periodic_checkpoint", "early_stopping"} <= set(cfg.callbacks)


# -- validation of values (mt.config_check) ---------------------------------------------------------------------
@pytest.mark.parametrize("overrides, message", [
    (["decode.beam_size=abc"], "decode.beam_size='abc' is invalid; use an integer >= 1"),
    (["decode.beam_size=0"], "decode.beam_size=0 is invalid; use an integer >= 1"),
    (["optim.lr=-1"], "optim.lr=-1 is invalid; use a number > 0"),
    (["optim.betas=[0.9,1.0]"], "optim.betas=[0.9, 1.0] is invalid; use a list of 2 items, each a number in [0, 1)"),
    (["trainer.precision=fp8"], "trainer.precision='fp8' is invalid; use one of "),
    (["model.dropout=1.0"], "model.dropout=1.0 is invalid; use a number in [0, 1)"),
    (["model=lstm", "model.decoder_hidden=0"], "model.decoder_hidden=0 is invalid; use an integer >= 1"),
    (["train.label_smoothing=1.5"], "train.label_smoothing=1.5 is invalid; use a number in [0, 1)"),
    (["train.nonfinite=sometimes"], "train.nonfinite='sometimes' is invalid; use one of stop, skip"),
    (["test_after_fit=yes"], "test_after_fit='yes' is invalid; use one of true, false"),
    (["data.tokenizer.vocab_size=0"], "data.tokenizer.vocab_size=0 is invalid; use an integer >= 1"),
    (["data.max_tokens=50"], "data.max_tokens=50 is smaller than one sentence of data.max_len=100 subwords "
                             "(101 tokens with EOS); use data.max_tokens >= 101 or lower data.max_len"),
    (["data.max_tokens=101", "data.bucket_width=8"], "use data.max_tokens >= 104"),
    (["decode.n_best=3", "decode.beam_size=2"], "decode.n_best=3 is larger than decode.beam_size=2"),
    (["optim.min_lr=0.01"], "optim.min_lr=0.01 is above optim.lr=0.001"),
    (["callbacks=[default,ema]", "callbacks.ema.decay=1"], "callbacks.ema.decay=1 is invalid; use a number in (0, 1)"),
])
def test_bad_values_are_one_line_naming_key_value_and_what_is_allowed(overrides, message):
    from mt.config_check import check_config
    from mt.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        check_config(compose_train([*overrides, "paths.output_dir=/tmp/x"]))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_every_bad_value_is_reported_at_once():
    from mt.config_check import check_config
    from mt.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        check_config(compose_train(["decode.beam_size=abc", "optim.lr=-1", "paths.output_dir=/tmp/x"]))
    assert "decode.beam_size='abc'" in str(e.value) and "optim.lr=-1" in str(e.value)


@pytest.mark.parametrize("model", ["transformer", "lstm", "transformer_base", "lstm_base"])
@pytest.mark.parametrize("extra", [[], ["debug=tiny"], ["debug=fdr"], ["debug=overfit"], ["debug=limit"],
                                   ["debug=profiler"], ["experiment=multi30k_cpu"], ["data.tgt=zh", "data.src=en"]])
def test_shipped_configs_pass_validation(model, extra):
    from mt.config_check import check_config

    check_config(compose_train([f"model={model}", *extra, "paths.output_dir=/tmp/x"]))


@pytest.mark.parametrize("precision", ["32", 32, "bf16-mixed", "16-mixed", "bf16-true", "64-true"])
def test_precisions_lightning_accepts_pass(precision):
    from mt.config_check import check_config, lightning_precisions

    assert precision in lightning_precisions()
    check_config(compose_train([f"trainer.precision={precision}", "paths.output_dir=/tmp/x"]))


def test_auto_precision_is_bf16_only_where_the_device_has_bf16_units(monkeypatch):
    import torch

    from mt import device
    from mt.config_check import check_config

    check_config(compose_train(["trainer.precision=auto", "paths.output_dir=/tmp/x"]))
    cpu = torch.device("cpu")
    for units, want in ((True, "bf16-mixed"), (False, "32-true")):
        monkeypatch.setattr(device, "has_bf16_units", lambda d, units=units: units)
        assert device.train_precision("auto", cpu) == want
        assert device.train_precision("16-mixed", cpu) == "16-mixed"  # an explicit choice stands
    assert device.training_device("cpu") == cpu


def test_a_cpu_has_bf16_units_only_with_avx512_bf16_or_amx(monkeypatch):
    """oneDNN calls bf16 supported on any AVX-512 CPU (emulated there, 2.3x slower than fp32): the CPU's own
    bf16 instructions decide."""
    import torch

    from mt.device import has_bf16_units

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    cpu = torch.device("cpu")
    for avx512_bf16, amx, want in ((False, False, False), (True, False, True), (False, True, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert has_bf16_units(cpu) is want


def test_bad_value_from_the_cli_is_one_line_before_data_preparation(tmp_path):
    r = subprocess.run([sys.executable, "train.py", "decode.beam_size=abc", f"hydra.run.dir={tmp_path / 'run'}",
                        f"paths.cache_dir={tmp_path / 'cache'}", f"paths.data_dir={tmp_path / 'data'}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert lines == ["error: decode.beam_size='abc' is invalid; use an integer >= 1"], r.stderr[-2000:]
    assert not (tmp_path / "cache").exists() and not (tmp_path / "data").exists()  # nothing prepared


# -- config groups: one file per callback, debug ---------------------------------------------------------------
def test_callbacks_default_composes_one_file_per_callback():
    cfg = compose_train(["paths.output_dir=/tmp/x"])
    targets = {name: node._target_ for name, node in cfg.callbacks.items()}
    assert targets == {"checkpoint": "lightning.pytorch.callbacks.ModelCheckpoint",
                       "periodic_checkpoint": "mt.lightning_private.PeriodicCheckpoint",
                       "early_stopping": "lightning.pytorch.callbacks.EarlyStopping",
                       "lr_monitor": "lightning.pytorch.callbacks.LearningRateMonitor"}
    for name in targets:  # each one is its own file
        assert list(OmegaConf.load(ROOT / "conf" / "callbacks" / f"{name}.yaml")) == [name]
    assert cfg.callbacks.checkpoint.monitor == "val/bleu" and cfg.callbacks.checkpoint.save_top_k == 3
    assert compose_train(["callbacks.early_stopping=null", "paths.output_dir=/tmp/x"]).callbacks.early_stopping is None
    with_ema = compose_train(["callbacks=[default,ema]", "paths.output_dir=/tmp/x"]).callbacks
    assert list(with_ema) == [*targets, "ema"] and with_ema.ema._target_ == "mt.lightning_private.ModelEMA"
