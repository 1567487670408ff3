"""Outside systems beside ours: what a JoeyNMT run of ``../shared/tools/peers/joeynmt/run.sh`` produced.

The runner trains JoeyNMT 2.3.0 on the same data for a wall-clock budget and tests it with beam 5 and sacreBLEU
(``WORK_DIR/models/<model>/train.log``, ``WORK_DIR/logs/<model>.train.start``,
``WORK_DIR/results/<model>[@latest]/scores.jsonl`` and ``<set>.test``, its detokenized translations). This module
only reads those files: the peer is run beforehand, on the same machine, one run after the other (its README says
why). Its validation BLEU is JoeyNMT's own greedy validation; its test scores are the runner's sacreBLEU scores
(cased, detokenized, 13a, like ours).
"""

from __future__ import annotations

import json
import re
import statistics
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig

from mt.api import MTError

_TS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - ")
_EVAL = re.compile(r"Evaluation result \(greedy\): bleu:\s+([\d.]+)")
_TOK_S = re.compile(r"Step:\s+(\d+), Batch Loss:.*Tokens per Sec:\s+(\d+)")
_PARAMS = re.compile(r"Total params:\s*(\d+)")


def _timestamp(line: str) -> float | None:
    m = _TS.match(line)
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() if m else None


def read_joeynmt(name: str, work_dir: str | Path, model: str = "transformer", checkpoint: str = "best") -> dict:
    """One JoeyNMT run as the report's peer row: validation curve against wall-clock, test scores, speed."""
    work = Path(work_dir)
    log_path = work / "models" / model / "train.log"
    if not log_path.is_file():
        raise MTError(f"peers.{name}: {log_path} is missing; train it first with ../shared/tools/peers/joeynmt/"
                      f"run.sh DATA_DIR - {work} MINUTES setup prep train:{model} test:{model}")
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    start_file = work / "logs" / f"{model}.train.start"
    start = (float(start_file.read_text().strip()) if start_file.is_file()
             else next((t for t in map(_timestamp, lines) if t is not None), None))
    curve, tok_s, params = [], [], None
    for line in lines:
        if (m := _EVAL.search(line)) and (t := _timestamp(line)) is not None and start is not None:
            curve.append({"elapsed_s": round(t - start, 1), "bleu": float(m.group(1))})
        elif m := _TOK_S.search(line):
            tok_s.append(float(m.group(2)))
        elif m := _PARAMS.search(line):
            params = int(m.group(1))
    tag = model if checkpoint == "best" else f"{model}@{checkpoint}"
    scores_path = work / "results" / tag / "scores.jsonl"
    test = {}
    if scores_path.is_file():
        for row in map(json.loads, filter(str.strip, scores_path.read_text(encoding="utf-8").splitlines())):
            test[row["set"]] = {"bleu": float(row["bleu"]), "chrf": float(row["chrf"]), "n_sentences": int(row["n"]),
                                "bleu_signature": row.get("bleu_sig"), "chrf_signature": row.get("chrf_sig")}
    hypotheses = {f.name.removesuffix(".test"): str(f) for f in sorted((work / "results" / tag).glob("*.test"))}
    return {"name": name, "system": "JoeyNMT", "model": model, "checkpoint": checkpoint, "work_dir": str(work),
            "params": params, "val_curve": curve, "test": test, "hypotheses": hypotheses,
            "train_tok_s_median": statistics.median(tok_s) if tok_s else None}


def read_peers(peers: DictConfig | dict | None) -> dict[str, dict]:
    """``peers`` of conf/compare.yaml (name -> {work_dir, model, checkpoint}) -> name -> peer row."""
    return {str(name): read_joeynmt(str(name), p["work_dir"], str(p.get("model", "transformer")),
                                    str(p.get("checkpoint", "best")))
            for name, p in (peers or {}).items()}
