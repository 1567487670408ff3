"""Beam search with the source-only state kept once per sentence (``Seq2Seq.source_state_keys``) or copied, A/B.

A diagnostic behind the README's figure (sessions 21-22), not a benchmark: it decodes the first ``--sentences``
test2016 sentences with beam 5 on one thread, alternating the model's own ``source_state_keys`` with one that names
nothing (every entry copied per hypothesis at every reorder) for ``--rounds`` rounds in one process, and prints
sentences/s of each and whether the translations are identical.

    python tools/source_state_ab.py CKPT [--sentences 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time

import torch

from mt.api import Translator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--source", default="../shared/data/multi30k/test_2016_flickr.en.gz")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with gzip.open(args.source, "rt", encoding="utf-8") as f:
        sources = [line.strip() for line in f][: args.sentences]
    translator = Translator.from_checkpoint(args.ckpt, {"beam_size": 5}, device="cpu")
    model, own = translator.model, translator.model.source_state_keys
    translator.translate(sources[:20])  # warm-up
    rates: dict[str, list[float]] = {"copy_all": [], "keep_source": []}
    outputs = {}
    for _ in range(args.rounds):
        for name in rates:
            model.source_state_keys = own if name == "keep_source" else (lambda state: frozenset())
            start = time.perf_counter()
            outputs[name] = translator.translate(sources)
            rates[name].append(len(sources) / (time.perf_counter() - start))
    print(json.dumps({"sent_s": {k: [round(r, 1) for r in v] for k, v in rates.items()},
                      "median_ratio": round(statistics.median(rates["keep_source"])
                                            / statistics.median(rates["copy_all"]), 3),
                      "identical": outputs["copy_all"] == outputs["keep_source"]}))


if __name__ == "__main__":
    main()
