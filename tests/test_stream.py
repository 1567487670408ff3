"""python -m mt.stream through a pipe: output appears before the input line ends; many lines per run."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from mt.pipeline import train
from mt.stream import END_OF_LINE, words_from
from tests.utils import ROOT, SHARED_DATA, compose_train, tiny_overrides


def test_words_arrive_as_soon_as_they_end():
    r, w = os.pipe()
    os.write(w, "Ein Mann  fä".encode())
    events = words_from(r)
    assert [next(events), next(events)] == ["Ein", "Mann"]  # "fä" is not complete yet: nothing more to read
    os.write(w, b"hrt\tRad\nzwei\r\n\nlast" + b"\xff")
    os.close(w)
    assert list(events) == ["fährt", "Rad", END_OF_LINE, "zwei", END_OF_LINE, END_OF_LINE, "last\ufffd",
                            END_OF_LINE]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("stream")
    overrides = tiny_overrides("transformer", tmp / "run", tmp / "cache") + [
        "model.causal_encoder=true", "trainer.max_steps=8", "test_after_fit=false", "trainer.limit_val_batches=1"]
    return Path(train(compose_train(overrides)).last_checkpoint)


def _read_available(fd: int, timeout: float) -> bytes:
    """What arrives on ``fd`` within ``timeout`` seconds (waiting for the first bytes only)."""
    ready, _, _ = select.select([fd], [], [], timeout)
    return os.read(fd, 65536) if ready else b""


def test_stream_emits_before_the_line_ends(ckpt, tmp_path):
    env = {**os.environ, "MT_DATA_DIR": str(SHARED_DATA), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mt.stream", f"ckpt={ckpt}", "decode.wait_k=2",
                             f"hydra.run.dir={tmp_path}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env=env)
    try:
        words = ("A man in a blue shirt is standing on a ladder and cleaning a window while two young "
                 "children in red jackets play with a dog on the street").split()
        early = b""
        for i, word in enumerate(words):  # a word at a time, with pauses; the line is not ended yet
            proc.stdin.write(word.encode() + b" ")
            proc.stdin.flush()
            # wait-2 writes its first target token once two words are read and prints that word when the next
            # token starts a new one: here after the third word (start-up included); then only pause
            early += _read_available(proc.stdout.fileno(), 60.0 if i == 2 else 0.3)
        print("printed before the end of the line:", early.decode())
        assert early.strip(), "nothing was printed before the end of the line"
        assert b"\n" not in early  # the sentence has not ended: no newline yet
        # end the line, then two more lines (communicate writes them and closes stdin)
        rest, err = proc.communicate(b"\nTwo dogs play in the snow.\n\n", timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    lines = (early + rest).decode().split("\n")
    assert len(lines) == 4 and lines[-1] == "" and lines[2] == ""  # one output line per input line
    assert lines[0].startswith(early.decode().strip()) and lines[1].strip()


def test_stream_refuses_a_full_sentence_model(ckpt, tmp_path):
    import torch

    full = torch.load(ckpt, map_location="cpu", weights_only=True)
    full["hyper_parameters"]["model"]["causal_encoder"] = False  # same weights, bidirectional encoder
    torch.save(full, tmp_path / "full.ckpt")
    r = subprocess.run([sys.executable, "-m", "mt.stream", f"ckpt={tmp_path / 'full.ckpt'}",
                        f"hydra.run.dir={tmp_path}"], input=b"a b\n", capture_output=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and "streaming model" in r.stderr.decode() and "Traceback" not in r.stderr.decode()
