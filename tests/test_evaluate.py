"""evaluate.py end to end on a tiny trained checkpoint: splits, files, stdin (also interactive), n-best output,
run folders, bad input."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from mt.checkpoint import CheckpointError
from mt.errors import MTError
from mt.metrics import corpus_score
from mt.pipeline import train
from mt.translate import Translator, resolve_checkpoint
from tests.utils import CONF, ROOT, SHARED_DATA, compose_train, tiny_overrides


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


def test_translating_imports_neither_lightning_nor_datasets(ckpt):
    """evaluate.py, mt.stream and mt.export load and run a model with torch, sentencepiece and sacreBLEU only:
    Lightning and datasets (seconds to import) come in only to train or to read a corpus split."""
    probe = ("import sys, mt.evaluate, mt.stream, mt.export.command, mt.export.hf, mt.export.ct2\n"
             "from mt.translate import Translator\n"
             "out = Translator.from_checkpoint(sys.argv[1], device='cpu').translate(['A dog runs.'])\n"
             "print(len(out), sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'datasets'}))")
    r = subprocess.run([sys.executable, "-c", probe, str(ckpt)], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "1 []", r.stdout


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


@pytest.mark.parametrize("args, message", [
    (["ckpt=best"], "ckpt=best needs run=DIR"),
    (["ckpt=CKPT", "decode.n_best=3", "decode.beam_size=2"], "decode.n_best=3 is larger than decode.beam_size=2"),
    (["ckpt=CKPT", "engine=ctranslate2"], "engine=ctranslate2 runs an exported CTranslate2 model"),
    (["ckpt=CKPT", "model_dir=CKPT"], "give either ckpt= or model_dir="),
    (["model_dir=TMP"], "is not an exported model folder"),
    (["ckpt=CKPT", "weights=raw"], "keeps no moving average of its weights (trained without callbacks ema"),
    (["ckpt=CKPT", "weights=ema"], "weights=ema is not one of checkpoint, raw"),
    (["ckpt=CKPT", "compare_with=CKPT", "compare_weights=raw"], "keeps no moving average"),
    (["model_dir=TMP", "weights=raw"], "is an exported model with one set of weights"),
])
def test_model_choice_errors_are_one_line(ckpt, tmp_path, args, message):
    from mt.evaluate import evaluate

    args = [a.replace("CKPT", str(ckpt)).replace("TMP", str(tmp_path)) for a in args]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=[*args, "input=/dev/null", f"paths.output_dir={tmp_path}"])
    with pytest.raises(MTError, match=re.escape(message)) as e:
        evaluate(cfg)
    assert "\n" not in str(e.value)


# -- run folders (ckpt=<run dir>, ckpt=best|last run=DIR) -------------------------------------------------------
def test_run_folder_and_best_of_run_resolve_to_checkpoints(ckpt, tmp_path):
    run = ckpt.parent.parent
    best = Path(json.loads((run / "results.json").read_text())["best_checkpoint"])
    assert best.is_file() and best.name != "last.ckpt"
    assert resolve_checkpoint(str(run)) == best
    assert resolve_checkpoint("best", str(run)) == best
    assert resolve_checkpoint("last", str(run)) == run / "checkpoints" / "last.ckpt"
    unfinished = tmp_path / "unfinished"
    (unfinished / "checkpoints").mkdir(parents=True)
    (unfinished / "checkpoints" / "last.ckpt").write_bytes(ckpt.read_bytes())
    assert resolve_checkpoint(str(unfinished)) == unfinished / "checkpoints" / "last.ckpt"  # no results.json
    (tmp_path / "empty").mkdir()
    for args, message in (((str(tmp_path / "empty"),), "without a best checkpoint in results.json"),
                          (("best", str(unfinished)), "has no results.json naming an existing best checkpoint"),
                          (("best", str(tmp_path / "nowhere")), "is not a folder"),
                          (("best",), "ckpt=best needs run=DIR")):
        with pytest.raises(CheckpointError, match=re.escape(message)) as e:
            resolve_checkpoint(*args)
        assert "\n" not in str(e.value)

    src, ref = tmp_path / "in.txt", tmp_path / "ref.txt"
    src.write_text("A dog runs.\nA girl sings.\n", encoding="utf-8")
    ref.write_text("Ein Hund rennt.\nEin Mädchen singt.\n", encoding="utf-8")
    r = run_evaluate("ckpt=best", f"run={run}", f"hydra.run.dir={tmp_path / 'ev'}", f"input={src}",
                     f"output={tmp_path / 'hyp.txt'}", f"references={ref}")
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["ckpt"] == str(best)
    r = run_evaluate(f"ckpt={tmp_path / 'empty'}", f"hydra.run.dir={tmp_path / 'ev2'}", "input=-", stdin=b"A.\n")
    assert r.returncode == 2 and "without a best checkpoint" in r.stderr.decode()
    assert "Traceback" not in r.stderr.decode()


# -- n-best ---------------------------------------------------------------------------------------------------
NBEST_LINE = re.compile(r"^(\d+)\t(-?\d+\.\d{4})\t(.*)$")


def test_translate_n_best_returns_scored_hypotheses_best_first(ckpt):
    tr = Translator.from_checkpoint(ckpt, decode_cfg={"beam_size": 3}, device="cpu")
    sources = ["A dog runs in the snow.", "", "Two men talk."]
    best = tr.translate(sources)
    scored = tr.translate(sources, n_best=3)
    assert [len(h) for h in scored] == [3, 3, 3]
    for text, hyps in zip(best, scored, strict=True):
        assert hyps[0].text == text
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert all(h.log_prob <= 0 for h in hyps)
    assert len({h.text for h in scored[0]}) == 3  # three different hypotheses
    assert all(h.text == "" and h.score == 0 for h in scored[1])  # empty line in, empty hypotheses out
    with pytest.raises(MTError, match="n_best=4 needs") as e:
        tr.translate(sources, n_best=4)
    assert "\n" not in str(e.value)


def test_evaluate_n_best_writes_index_score_hypothesis_and_scores_the_best(ckpt, tmp_path):
    src, ref, hyp = tmp_path / "in.txt", tmp_path / "ref.txt", tmp_path / "hyp.txt"
    sources = ["A dog runs in the snow.", "", "Two men talk."]
    src.write_text("".join(s + "\n" for s in sources), encoding="utf-8")
    refs = ["Ein Hund rennt im Schnee.", "", "Zwei Männer reden."]
    ref.write_text("".join(s + "\n" for s in refs), encoding="utf-8")
    r = run_evaluate(f"ckpt={ckpt}", f"hydra.run.dir={tmp_path / 'ev'}", f"input={src}", f"output={hyp}",
                     f"references={ref}", "decode.n_best=3", "decode.beam_size=3")
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    rows = [NBEST_LINE.match(line) for line in hyp.read_text(encoding="utf-8").split("\n")[:-1]]
    assert len(rows) == 9 and all(rows)
    assert [int(m[1]) for m in rows] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for i in range(3):
        scores = [float(m[2]) for m in rows[3 * i: 3 * i + 3]]
        assert scores == sorted(scores, reverse=True)
    assert [m[3] for m in rows[3:6]] == ["", "", ""] and [float(m[2]) for m in rows[3:6]] == [0, 0, 0]
    best = [rows[3 * i][3] for i in range(3)]
    expected = Translator.from_checkpoint(ckpt, decode_cfg={"beam_size": 3}, device="cpu")  # the rest as trained
    assert best == expected.translate(sources)
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["scores"]["input"]["chrf"] == pytest.approx(corpus_score(best, refs, tgt_lang="de").chrf)


# -- interactive stdin ----------------------------------------------------------------------------------------
def test_interactive_stdin_translates_each_line_before_the_next_is_written(ckpt, tmp_path):
    """A pipe that stays open: write a line, wait for its translation, then write the next (evaluate.py must not
    wait for the end of its input)."""
    env = {**os.environ, "MT_DATA_DIR": str(SHARED_DATA), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "evaluate.py"), f"ckpt={ckpt}", "input=-", "output=-",
                             f"hydra.run.dir={tmp_path}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    sources = ["A dog runs in the snow.", "Two men talk."]
    try:
        got = []
        for i, source in enumerate(sources):
            proc.stdin.write(source.encode() + b"\n")
            proc.stdin.flush()
            got.append(lines.get(timeout=180 if i == 0 else 60).decode().rstrip("\n"))  # startup, then one line
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    expected = Translator.from_checkpoint(ckpt, device="cpu").translate(sources)  # decoded as trained
    assert got == expected and all(got)


# -- decode settings: the model's own, then the command line's -------------------------------------------------
def test_decode_override_keys_name_what_the_command_line_sets():
    from mt.evaluate import decode_override_keys

    assert decode_override_keys(["ckpt=x", "decode.len_penalty=1.0", "+decode.max_len_b=5", "~decode.min_len",
                                 "output=-"]) == {"len_penalty", "max_len_b"}
    assert decode_override_keys(["decode=greedy"]) == {"beam_size"}
    assert decode_override_keys(["decode=wait_k", "decode.wait_k=2"]) == {"policy", "wait_k"}


def test_evaluate_decodes_with_the_checkpoints_settings_unless_the_command_line_overrides(ckpt, tmp_path):
    """A run trained with other decode settings (here beam 2, length penalty 1.3) is evaluated with them, as the
    test after training and Translator.from_checkpoint do; what evaluate.py is given overrides only those keys."""
    from mt.checkpoint import atomic_torch_save, load_checkpoint

    data = load_checkpoint(ckpt)
    data["hyper_parameters"]["decode"].update(beam_size=2, len_penalty=1.3)
    tuned = tmp_path / "tuned.ckpt"
    atomic_torch_save(data, tuned)
    src = tmp_path / "src.txt"
    src.write_text("A dog runs.\n", encoding="utf-8")
    r = run_evaluate(f"ckpt={tuned}", f"hydra.run.dir={tmp_path / 'a'}", f"input={src}", f"references={src}",
                     "output=-", "decode.len_penalty=0.5")
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    used = json.loads((tmp_path / "a" / "metrics.json").read_text())["decode"]
    assert (used["beam_size"], used["len_penalty"]) == (2, 0.5)
    r = run_evaluate(f"ckpt={tuned}", f"hydra.run.dir={tmp_path / 'b'}", f"input={src}", f"references={src}",
                     "output=-", "decode=greedy")
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    used = json.loads((tmp_path / "b" / "metrics.json").read_text())["decode"]
    assert (used["beam_size"], used["len_penalty"]) == (1, 1.3)


def test_evaluate_split_to_stdout_writes_only_the_hypotheses_there(ckpt, tmp_path):
    r = run_evaluate(f"ckpt={ckpt}", f"hydra.run.dir={tmp_path}", "output=-", "+data.limit=7", "decode.beam_size=1",
                     f"paths.cache_dir={tmp_path / 'cache'}")
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert len(r.stdout.decode().splitlines()) == 7 and "BLEU" not in r.stdout.decode()
    assert "BLEU" in r.stderr.decode()
