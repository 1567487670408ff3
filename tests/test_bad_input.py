"""Bad input not covered elsewhere: hostile and mismatched checkpoints, output folders, translation input, config.

Covered in other files (not repeated here): corpus line-count mismatch, empty/whitespace-only lines, invalid UTF-8,
CRLF, control characters, empty file, truncated gzip (test_data_corpus.py); empty lines and invalid UTF-8 in
evaluate.py input, missing ckpt=???, nonexistent ckpt, unknown key, truncated checkpoint in evaluate.py
(test_evaluate.py); unknown keys/groups at compose time (test_config.py); init_from of another architecture and a
missing ckpt_path=last (test_train.py); truncation of long sources in source_batches (test_data_batching.py).
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from mt.checkpoint import CheckpointError, load_checkpoint
from mt.data import DataConfig, DataError, prepare
from mt.errors import MTError
from mt.evaluate import evaluate
from mt.pipeline import train
from mt.preflight import check_output_dir
from mt.textio import InputError
from mt.translate import Translator
from tests.corpora import WORDS, sentences, text_corpus, write
from tests.utils import CONF, ROOT, SHARED_DATA, compose_train, tiny_overrides


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Path]:
    """A tiny trained transformer: its run folder, last.ckpt and the data cache."""
    tmp = tmp_path_factory.mktemp("bad_input")
    result = train(compose_train(tiny_overrides("transformer", tmp / "run", tmp / "cache") + ["test_after_fit=false"]))
    return {"dir": tmp / "run", "ckpt": Path(result.last_checkpoint), "cache": tmp / "cache"}


def one_line(e: BaseException) -> str:
    message = str(e)
    assert "\n" not in message and message, message
    return message


def cli(script: str, *args: str, stdin: bytes = b"", timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "MT_DATA_DIR": str(SHARED_DATA), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / script), *args], input=stdin, capture_output=True, env=env,
                          cwd=ROOT, timeout=timeout)


def assert_one_line_error(r: subprocess.CompletedProcess, message: str) -> None:
    stderr = r.stderr.decode(errors="replace")
    assert r.returncode != 0, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and message in lines[0], stderr[-2000:]


# -- untrusted checkpoints ------------------------------------------------------------------------------------
class RunsCodeOnLoad:
    """Pickles as a call of open(marker, "w"): unpickling it with weights_only=False creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def crafted(tmp_path, run) -> tuple[Path, Path]:
    """A checkpoint that looks like ours but runs code when unpickled; the payload is proven live first."""
    marker, path = tmp_path / "code-ran.marker", tmp_path / "crafted.ckpt"
    ckpt = load_checkpoint(run["ckpt"])
    ckpt["hyper_parameters"]["payload"] = RunsCodeOnLoad(marker)
    torch.save(ckpt, path)
    torch.load(path, weights_only=False)  # what an unsafe loader would do: the code runs
    assert marker.exists()
    marker.unlink()
    return path, marker


def test_checkpoint_crafted_to_run_code_is_refused(crafted, run, tmp_path):
    path, marker = crafted
    with pytest.raises(CheckpointError, match="refused") as e:
        load_checkpoint(path)
    assert "weights_only" in one_line(e.value)
    with pytest.raises(CheckpointError):
        Translator.from_checkpoint(path, device="cpu")
    for key in ("ckpt_path", "init_from"):  # resuming and fine-tuning load it the same way
        with pytest.raises(CheckpointError):
            train(compose_train(tiny_overrides("transformer", tmp_path / key, run["cache"]) + [f"{key}={path}"]))
    assert not marker.exists()


def test_checkpoint_crafted_to_run_code_through_evaluate_cli(crafted, tmp_path):
    path, marker = crafted
    r = cli("evaluate.py", f"ckpt={path}", "input=-", "output=-", f"hydra.run.dir={tmp_path / 'ev'}",
            stdin=b"A dog.\n")
    assert_one_line_error(r, "refused (weights_only=True)")
    assert not marker.exists()


def test_tokenizer_bytes_and_weights_that_do_not_fit_are_one_line(run, tmp_path):
    ckpt = load_checkpoint(run["ckpt"])
    garbage = bytearray(b"this is not a sentencepiece model")
    import hashlib

    bad_tok = {**ckpt, "tokenizer": {"model": torch.frombuffer(garbage, dtype=torch.uint8),
                                     "sha256": hashlib.sha256(garbage).hexdigest()}}
    torch.save(bad_tok, tmp_path / "tok.ckpt")
    with pytest.raises(MTError) as e:  # read as data by sentencepiece; refused, not executed
        Translator.from_checkpoint(tmp_path / "tok.ckpt", device="cpu")
    one_line(e.value)
    wrong = {**ckpt, "hyper_parameters": {**ckpt["hyper_parameters"],
                                          "model": {**ckpt["hyper_parameters"]["model"], "d_model": 64}}}
    torch.save(wrong, tmp_path / "wrong.ckpt")
    with pytest.raises(CheckpointError, match="do not fit the configured model") as e:
        Translator.from_checkpoint(tmp_path / "wrong.ckpt", device="cpu")
    one_line(e.value)


def test_resume_from_a_misfit_checkpoint_is_one_line_before_training(run, tmp_path):
    base = tiny_overrides("lstm", tmp_path / "a", run["cache"])
    with pytest.raises(CheckpointError, match="do not fit the configured model") as e:  # another architecture
        train(compose_train(base + [f"ckpt_path={run['ckpt']}"]))
    one_line(e.value)
    base = tiny_overrides("transformer", tmp_path / "b", run["cache"], limit=150)  # other data: other tokenizer
    with pytest.raises(CheckpointError, match="another tokenizer") as e:
        train(compose_train(base + [f"ckpt_path={run['ckpt']}"]))
    one_line(e.value)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(run["ckpt"].read_bytes()[:5000])
    base = tiny_overrides("transformer", tmp_path / "c", run["cache"])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as e:
        train(compose_train(base + [f"ckpt_path={cut}"]))
    one_line(e.value)
    with pytest.raises(MTError, match="does not exist") as e:
        train(compose_train(base + [f"ckpt_path={tmp_path / 'nope.ckpt'}"]))
    one_line(e.value)
    assert not list((tmp_path / "c").glob("csv/*"))  # nothing trained


# -- output folder ------------------------------------------------------------------------------------------
def test_output_dir_under_a_regular_file_is_one_line_from_the_cli(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    r = cli("train.py", f"hydra.run.dir={tmp_path / 'file' / 'run'}", timeout=120)  # Hydra's own run folder
    assert r.returncode == 2
    assert_one_line_error(r, f"output directory {tmp_path / 'file' / 'run'} is not writable")


def test_output_dir_unwritable_or_full_is_reported_before_any_work(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    cfg = compose_train(tiny_overrides("transformer", tmp_path / "file" / "run", tmp_path / "cache"))
    with pytest.raises(MTError, match="is not writable") as e:
        train(cfg)
    one_line(e.value)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * 2**30, 10 * 2**30 - 5 * 2**20, 5 * 2**20))
    with pytest.raises(MTError, match="has only 5 MiB free") as e:
        train(compose_train(tiny_overrides("transformer", tmp_path / "full", tmp_path / "cache")))
    one_line(e.value)
    assert not (tmp_path / "cache").exists()  # failed before data preparation, let alone training
    monkeypatch.undo()
    with pytest.raises(MTError, match="free"):
        check_output_dir(tmp_path / "big", min_free=2**62)
    check_output_dir(tmp_path / "small", min_free=1)


# -- translation input ----------------------------------------------------------------------------------------
def test_empty_input_gives_empty_output(run, tmp_path):
    assert Translator.from_checkpoint(run["ckpt"], device="cpu").translate([]) == []
    (tmp_path / "refs.txt").write_bytes(b"")
    r = cli("evaluate.py", f"ckpt={run['ckpt']}", "input=-", "output=-", f"references={tmp_path / 'refs.txt'}",
            f"hydra.run.dir={tmp_path / 'ev'}", stdin=b"")
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert r.stdout == b"" and "nothing to score" in r.stderr.decode()


def test_decode_settings_override_some_of_the_stored_ones_and_unknown_ones_fail(run):
    stored = Translator.from_checkpoint(run["ckpt"], device="cpu")
    greedy = Translator.from_checkpoint(run["ckpt"], {"beam_size": 1}, device="cpu")
    assert greedy.search_cfg.beam_size == 1 and stored.search_cfg.beam_size != 1
    assert greedy.search_cfg.len_penalty == stored.search_cfg.len_penalty  # the rest as trained
    with pytest.raises(MTError, match=r"decode setting 'beam' is unknown; the settings are beam_size, "):
        Translator.from_checkpoint(run["ckpt"], {"beam": 1}, device="cpu")


def test_very_long_sentence_is_truncated_with_a_warning(run, caplog):
    long = "A dog runs in the park. " * 4200  # 100,800 characters
    tr = Translator.from_checkpoint(run["ckpt"], device="cpu")
    with caplog.at_level(logging.WARNING, logger="mt.data.collate"):
        hyps = tr.translate(["A dog.", long, "", "Two cats."])
    assert len(hyps) == 4 and hyps[2] == ""
    assert "truncated 1 of 4 source sentences" in caplog.text


def evaluate_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="evaluate", overrides=list(overrides))


def test_references_or_output_that_do_not_fit_are_one_line_before_translating(run, tmp_path):
    src, ref = tmp_path / "src.txt", tmp_path / "ref.txt"
    src.write_text("A dog.\nA cat.\n", encoding="utf-8")
    ref.write_text("Ein Hund.\nEine Katze.\nEin Pferd.\n", encoding="utf-8")
    common = [f"ckpt={run['ckpt']}", f"input={src}", f"paths.output_dir={tmp_path / 'ev'}"]
    cfg = evaluate_cfg(*common, f"output={tmp_path / 'hyp.txt'}", f"references={ref}")
    with pytest.raises(InputError, match=f"references {ref} has 3 lines but input {src} has 2") as e:
        evaluate(cfg)
    one_line(e.value)
    assert not (tmp_path / "hyp.txt").exists()  # checked before translating
    (tmp_path / "file").write_text("not a folder")
    for output, why in ((tmp_path / "file" / "hyp.txt", "cannot create its folder"),
                        (tmp_path, "it is a folder")):
        with pytest.raises(InputError, match=why) as e:
            evaluate(evaluate_cfg(*common, f"output={output}"))
        one_line(e.value)


def test_one_set_options_with_several_test_sets_are_one_line_before_translating(run, tmp_path):
    """output=, references= and compare_hyps= hold one set's lines: with two test sets they would be overwritten
    or misaligned, so they are refused before anything is translated."""
    ref = tmp_path / "ref.txt"
    ref.write_text("Ein Hund.\n", encoding="utf-8")
    common = [f"ckpt={run['ckpt']}", f"paths.output_dir={tmp_path / 'ev'}", "+data.limit=5",
              "+data.splits.test=[test_2016_flickr,val]"]
    for option in (f"output={tmp_path / 'hyp.txt'}", "output=-", f"references={ref}", f"compare_hyps={ref}"):
        name = option.split("=")[0]
        with pytest.raises(MTError, match=f"{name}= holds one set's lines but split=test has 2 sets "
                                          r"\(test_2016_flickr, val\); choose one with split=NAME") as e:
            evaluate(evaluate_cfg(*common, option))
        one_line(e.value)
    assert not (tmp_path / "hyp.txt").exists() and not (tmp_path / "ev" / "metrics.json").exists()


def test_byte_order_mark_is_not_part_of_the_first_line(tmp_path):
    from mt.textio import read_lines

    path = tmp_path / "ref.txt"
    path.write_bytes("\ufeffEin Hund.\r\nEine Katze.\n".encode())
    assert read_lines(str(path)) == ["Ein Hund.", "Eine Katze."]


# -- corpus ---------------------------------------------------------------------------------------------------
def test_100k_character_lines_dropped_in_training_kept_and_truncated_in_validation(tmp_path, caplog):
    folder = text_corpus(tmp_path / "c", n=60)
    long = " ".join(WORDS[i % len(WORDS)] for i in range(25_000))[:100_000]
    src, tgt = sentences(60, "xx"), sentences(60, "yy")
    src[10] = long
    write(folder / "train.xx", src)
    write(folder / "train.yy", tgt)
    vsrc = sentences(8, "xx")
    vsrc[3] = long
    write(folder / "valid.xx", vsrc)
    cfg = compose_train(["data=text", f"data.dir={folder}", "data.src=xx", "data.tgt=yy", "model=transformer",
                         "model.d_model=32", "model.n_heads=2", "model.ffn_dim=64", "model.encoder_layers=1",
                         "model.decoder_layers=1", f"paths.cache_dir={tmp_path / 'cache'}",
                         f"paths.output_dir={tmp_path / 'run'}", "data.tokenizer.vocab_size=100",
                         "data.tokenizer.hard_vocab_limit=false", "trainer.accelerator=cpu", "trainer.max_epochs=1",
                         "trainer.enable_progress_bar=false", "logger=csv", "decode.beam_size=1",
                         "decode.max_len_a=0", "decode.max_len_b=5", "test_after_fit=false"])
    stats = prepare(DataConfig.from_omegaconf(cfg.data), Path(cfg.paths.cache_dir)).stats
    assert stats["train"].dropped["too_long"] == 1 and stats["train"].kept == 59  # dropped, counted
    assert stats["validation"].kept == 8  # never dropped from evaluation
    with caplog.at_level(logging.WARNING, logger="mt.module"):
        result = train(cfg)  # the long validation source once crashed the model's position table (1024)
    assert result.best_bleu is not None
    assert "validation: 1 source sentence(s) longer than 1023 subwords were truncated" in caplog.text


def test_dataset_loading_script_is_not_executed(compose_cfg, tmp_path):
    marker = tmp_path / "code-ran.marker"
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "ds.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    cfg = compose_cfg("data=hf", f"data.path={tmp_path / 'ds'}", f"paths.cache_dir={tmp_path / 'cache'}")
    with pytest.raises(DataError) as e:
        prepare(DataConfig.from_omegaconf(cfg.data), tmp_path / "cache")
    one_line(e.value)
    assert not marker.exists()


# -- config ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("script, args, message", [
    ("train.py", ["model=gru"], "Could not find 'model/gru'"),  # unknown option of a config group
    ("evaluate.py", ["ckpt=x.ckpt", "decode=nosuch"], "Could not find 'decode/nosuch'"),
    ("train.py", ["--bogus"], "unrecognized arguments: --bogus"),  # unknown command-line option
])
def test_unknown_options_are_reported_without_a_traceback(script, args, message, tmp_path):
    r = cli(script, *args, f"hydra.run.dir={tmp_path}", timeout=120)
    stderr = r.stderr.decode()
    assert r.returncode != 0 and message in stderr and "Traceback" not in stderr


def test_unknown_option_value_is_one_line(tmp_path):
    with pytest.raises(MTError, match=r"train\.nonfinite='sometimes' is .*stop.*skip") as e:  # module or check
        train(compose_train(tiny_overrides("lstm", tmp_path / "run", tmp_path / "cache", limit=50) +
                            ["train.nonfinite=sometimes"]))
    one_line(e.value)


# -- full disk ------------------------------------------------------------------------------------------------
def test_disk_full_during_a_checkpoint_write_is_one_line_naming_it_and_keeps_the_previous(tmp_path, monkeypatch,
                                                                                           capsys):
    import errno

    from mt.checkpoint import atomic_torch_save
    from mt.errors import one_line_errors

    path = tmp_path / "checkpoints" / "last.ckpt"
    atomic_torch_save({"step": 1}, path)
    before = path.read_bytes()

    def save_until_the_disk_is_full(obj, f, *args, **kwargs):
        f.write(b"the first bytes of a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")  # what write/flush/fsync raise: no file name

    monkeypatch.setattr(torch, "save", save_until_the_disk_is_full)
    with pytest.raises(SystemExit) as e, one_line_errors():  # atomic_open names the file itself
        atomic_torch_save({"step": 2}, path)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: no space left on device while writing {path}; "), err
    assert path.read_bytes() == before and sorted(path.parent.iterdir()) == [path]  # intact, no temp file left


def test_disk_full_error_with_a_file_name_is_one_line_other_os_errors_are_not_hidden(tmp_path, capsys):
    import errno

    from mt.errors import one_line_errors

    with pytest.raises(SystemExit) as e, one_line_errors():
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "cache" / "train.arrow"))
    assert e.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: no space left on device while writing {tmp_path}/cache/")
    with pytest.raises(PermissionError), one_line_errors():
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))


def test_checkpoint_naming_a_foreign_class_is_refused(run, tmp_path):
    """A checkpoint's model config may only name this project's classes: nothing else is instantiated."""
    from mt.checkpoint import atomic_torch_save
    from mt.translate import model_from_checkpoint

    ckpt = load_checkpoint(run["ckpt"])
    ckpt["hyper_parameters"]["model"]["_target_"] = "subprocess.call"
    with pytest.raises(CheckpointError, match="'subprocess.call' is not one of this project's models"):
        model_from_checkpoint(ckpt, "crafted.ckpt")
    atomic_torch_save(ckpt, tmp_path / "crafted.ckpt")
    r = cli("evaluate.py", f"ckpt={tmp_path / 'crafted.ckpt'}", f"hydra.run.dir={tmp_path / 'ev'}", "input=-",
            stdin=b"A dog.\n")
    assert_one_line_error(r, "not one of this project's models")


def test_checkpoint_config_cannot_reach_other_code_through_the_models_package(run, tmp_path):
    """A name that walks from a models module to another one (…base.torch.serialization.os.system) is refused,
    and a nested node with a ``_target_`` is never instantiated: stored configs are built without Hydra."""
    from mt.translate import model_from_checkpoint

    marker = tmp_path / "ran"
    ckpt = load_checkpoint(run["ckpt"])
    target = ckpt["hyper_parameters"]["model"]["_target_"]
    ckpt["hyper_parameters"]["model"]["_target_"] = "mt.models.base.torch.serialization.os.system"
    with pytest.raises(CheckpointError, match="is not one of this project's models"):
        model_from_checkpoint(ckpt, "crafted.ckpt")
    ckpt["hyper_parameters"]["model"]["_target_"] = target
    ckpt["hyper_parameters"]["model"]["dropout"] = {
        "_target_": "mt.models.base.torch.serialization.os.system", "_args_": [f"touch {marker}"]}
    with pytest.raises(CheckpointError, match="crafted.ckpt: the stored model config does not fit Transformer"):
        model_from_checkpoint(ckpt, "crafted.ckpt")  # the class got a dict where it wants a float; nothing ran
    assert not marker.exists()


def test_disk_filling_during_training_stops_with_one_line_naming_the_checkpoint(tmp_path, monkeypatch):
    """A checkpoint write that hits a full disk mid-training ends the run with a DiskFullError naming the file."""
    import errno

    from mt.errors import DiskFullError

    real_save = torch.save
    calls = {"n": 0}

    def fill_the_disk_on_the_second_save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", fill_the_disk_on_the_second_save)
    out = tmp_path / "run"
    cfg = compose_train(tiny_overrides("transformer", out, tmp_path / "cache") + [
        "trainer.max_epochs=2", "test_after_fit=false"])
    with pytest.raises(DiskFullError, match=rf"while writing {out / 'checkpoints'}/\S+\.ckpt") as e:
        train(cfg)
    assert "\n" not in str(e.value)
    assert not list((out / "checkpoints").glob("*.tmp")) and not list((out / "checkpoints").glob(".*.tmp"))
