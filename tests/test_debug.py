"""The debug group: debug=fdr|overfit|limit|profiler (Lightning's debugging switches) and debug=tiny (a seconds-long
real run: tiny model for any preset, a Multi30k slice, CPU, CSV logs)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.utils import CONF, SHARED_DATA, compose_train, tiny_overrides

OPTIONS = ["fdr", "overfit", "limit", "profiler", "tiny"]
PRESETS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def train(cfg):
    from mt.pipeline import train as run  # here: the composition tests do not need the whole pipeline

    return run(cfg)


def paths(out: Path, cache: Path) -> list[str]:
    return [f"paths.data_dir={SHARED_DATA}", f"paths.cache_dir={cache}", f"paths.output_dir={out}"]


def tiny_as_overrides(arch: str) -> list[str]:
    """debug=tiny (conf/debug/tiny.yaml + debug/model/tiny/<arch>.yaml) as plain overrides, to combine with another
    debug option (a group has one choice at a time)."""
    tiny = OmegaConf.load(CONF / "debug" / "tiny.yaml")
    out = [f"{k.removeprefix('override /')}={v}" for d in tiny.pop("defaults") for k, v in d.items()]
    model = OmegaConf.merge(tiny, {"model": OmegaConf.load(CONF / "debug" / "model" / "tiny" / f"{arch}.yaml")})
    flat = OmegaConf.to_container(model)

    def leaves(node: dict, prefix: str = ""):
        for k, v in node.items():
            yield from leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)]

    return [f"model={arch}", *out, *(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in leaves(flat))]


@pytest.mark.parametrize("option, keys", [
    ("fdr", {"trainer.fast_dev_run": True}),
    ("overfit", {"trainer.overfit_batches": 3, "callbacks.early_stopping": None, "test_after_fit": False}),
    ("limit", {"trainer.limit_train_batches": 10, "trainer.limit_val_batches": 3, "trainer.limit_test_batches": 3}),
    ("profiler", {"trainer.profiler": "simple", "trainer.max_epochs": 1}),
    ("tiny", {"model.d_model": 32, "data.limit": 200, "logger": {"csv"}, "trainer.accelerator": "cpu"}),
])
def test_each_option_composes_with_lightning_trainer_arguments(option, keys):
    import inspect

    import lightning

    cfg = compose_train([f"debug={option}", "paths.output_dir=/tmp/x"])
    for key, value in keys.items():
        got = OmegaConf.select(cfg, key)
        assert (set(got) if key == "logger" else got) == value, key
    assert set(cfg.trainer) <= set(inspect.signature(lightning.Trainer.__init__).parameters)
    plain = compose_train(["paths.output_dir=/tmp/x"])
    assert plain.trainer.fast_dev_run is False and "overfit_batches" not in plain.trainer  # off by default


@pytest.mark.parametrize("preset", PRESETS)
def test_tiny_has_tiny_sizes_for_every_model_preset(preset):
    cfg = compose_train(["debug=tiny", f"model={preset}", "paths.output_dir=/tmp/x"])
    sizes = {k: v for k, v in cfg.model.items() if k.endswith(("_dim", "_hidden", "_layers", "d_model"))}
    assert sizes and max(sizes.values()) <= 64, sizes
    assert cfg.model._target_ == compose_train([f"model={preset}", "paths.output_dir=/tmp/x"]).model._target_


@pytest.mark.parametrize("arch", ["transformer", "lstm"])
def test_tiny_is_what_the_tests_spell_out(arch):
    spelled = compose_train(tiny_overrides(arch, Path("/o"), Path("/c")))
    tiny = compose_train(["debug=tiny", f"model={arch}", "paths.output_dir=/o", "paths.cache_dir=/c",
                          f"paths.data_dir={spelled.paths.data_dir}"])
    assert OmegaConf.to_container(tiny) == OmegaConf.to_container(spelled)
    assert compose_train(tiny_as_overrides(arch) + ["paths.output_dir=/o", "paths.cache_dir=/c"]).model == tiny.model


def test_tiny_runs_end_to_end(tmp_path, cache):
    out = tmp_path / "run"
    result = train(compose_train(["debug=tiny", *paths(out, cache)]))
    assert result.epochs == 1 and result.num_parameters < 100_000
    assert result.best_bleu is not None and set(result.test) == {"test_2016_flickr"}
    assert (out / "csv" / "version_0" / "metrics.csv").is_file() and not (out / "tb").exists()


def test_fdr_runs_one_batch(tmp_path, cache):
    result = train(compose_train([*tiny_as_overrides("transformer"), "debug=fdr", *paths(tmp_path, cache)]))
    assert result.global_step == 1 and result.best_checkpoint is None  # fast_dev_run writes no checkpoints


def test_overfit_trains_on_the_same_few_batches(tmp_path, cache):
    result = train(compose_train([*tiny_as_overrides("lstm"), "debug=overfit", "trainer.max_epochs=2",
                                  *paths(tmp_path, cache)]))
    assert result.epochs == 2 and result.global_step == 2 * 3  # 3 batches per epoch
    assert result.test == {}  # no test pass


def test_limit_runs_a_few_batches_of_each_stage(tmp_path, cache):
    result = train(compose_train([*tiny_as_overrides("transformer"), "debug=limit", "trainer.max_epochs=1",
                                  "data.max_tokens=200", *paths(tmp_path, cache)]))  # > 10 batches per epoch
    assert result.global_step == 10
    assert result.test["test_2016_flickr"]["n_sentences"] < 200  # a subset, scored as such


def test_profiler_reports_where_time_goes(tmp_path, cache, caplog):
    with caplog.at_level(logging.INFO):
        result = train(compose_train([*tiny_as_overrides("transformer"), "debug=profiler", "test_after_fit=false",
                                      *paths(tmp_path, cache)]))
    assert result.epochs == 1
    assert "Profiler Report" in caplog.text and "run_training_batch" in caplog.text
