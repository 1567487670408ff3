"""evaluate.py end to end on a tiny trained checkpoint: splits, files, stdin, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mt.pipeline import train
from tests.utils import ROOT, SHARED_DATA, compose_train, tiny_overrides


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("eval")
    result = train(compose_train(tiny_overrides("transformer", tmp / "run", tmp / "cache") +
                                 ["test_after_fit=false"]))
    return Path(result.last_checkpoint)


def run_evaluate(*args: str, stdin: bytes | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "MT_DATA_DIR": str(SHARED_DATA), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(ROOT / "evaluate.py"), *args], input=stdin, capture_output=True,
                          env=env, cwd=cwd, timeout=300)


def test_evaluate_test_split(ckpt, tmp_path):
    out = tmp_path / "ev"
    r = run_evaluate(f"ckpt={ckpt}", f"hydra.run.dir={out}", "decode.beam_size=2", "+data.limit=50",
                     f"paths.cache_dir={tmp_path / 'cache'}")
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    stdout = r.stdout.decode()
    assert "BLEU" in stdout and "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" in stdout
    hyps = (out / "hyps.test_2016_flickr.txt").read_text(encoding="utf-8").splitlines()
    assert len(hyps) == 50
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scores"]["test_2016_flickr"]["n_sentences"] == 50


def test_evaluate_stdin_to_stdout_keeps_lines(ckpt, tmp_path):
    text = b"A man in a blue shirt.\n\n   \nTwo dogs run.\n"
    r = run_evaluate(f"ckpt={ckpt}", f"hydra.run.dir={tmp_path}", "input=-", "output=-", stdin=text)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    lines = r.stdout.decode().split("\n")
    assert lines[-1] == "" and len(lines) - 1 == 4
    assert lines[1] == "" and lines[2] == "" and lines[0] and lines[3]


def test_evaluate_file_to_file_with_references(ckpt, tmp_path):
    src, ref, hyp = tmp_path / "in.txt", tmp_path / "ref.txt", tmp_path / "out" / "hyp.txt"
    src.write_text("A dog runs.\r\nA girl sings.\r\n", encoding="utf-8")  # CRLF input
    ref.write_text("Ein Hund rennt.\nEin Mädchen singt.\n", encoding="utf-8")
    r = run_evaluate(f"ckpt={ckpt}", f"hydra.run.dir={tmp_path}", f"input={src}", f"output={hyp}",
                     f"references={ref}")
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert len(hyp.read_text(encoding="utf-8").splitlines()) == 2
    assert "BLEU" in r.stdout.decode()


@pytest.mark.parametrize("args, message", [
    ([], "missing required value(s): ckpt"),
    (["ckpt=/nonexistent/x.ckpt"], "does not exist"),
    (["ckpt=CKPT", "input=BADUTF8", "output=-"], "line 2: invalid UTF-8"),
    (["ckpt=CKPT", "nosuchkey=1"], "nosuchkey"),
])
def test_evaluate_errors_are_one_line(ckpt, tmp_path, args, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\n\xff\xfe broken\n")
    args = [a.replace("CKPT", str(ckpt)).replace("BADUTF8", str(bad)) for a in args]
    r = run_evaluate(*args, f"hydra.run.dir={tmp_path}")
    assert r.returncode != 0
    assert message in r.stderr.decode()
    assert "Traceback" not in r.stderr.decode()


def test_truncated_checkpoint_is_refused(ckpt, tmp_path):
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    r = run_evaluate(f"ckpt={cut}", f"hydra.run.dir={tmp_path}", "input=-", stdin=b"A dog.\n")
    assert r.returncode != 0 and "truncated or corrupt" in r.stderr.decode()
    assert "Traceback" not in r.stderr.decode()
