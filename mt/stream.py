"""python -m mt.stream ckpt=PATH [decode.wait_k=3]: simultaneous translation of a live text stream.

Reads stdin as it arrives (whatever bytes are available, never waiting for the end of a line), feeds each
source word to a :class:`~mt.simul.agent.WaitKAgent` as soon as its end (a space) has arrived, and prints
every target word the moment the policy commits it, flushed. The end of a line ends the sentence: the rest of
its translation follows, then a newline; the next line starts a new sentence. One output line per input
line (an empty line gives an empty line). The model must have a streaming encoder, so each source subword
costs one incremental encoder step and nothing is re-read.
"""

from __future__ import annotations

import codecs
import logging
import os
import sys
from collections.abc import Iterator
from typing import TextIO

import hydra
import torch
from omegaconf import DictConfig

from mt.checkpoint import load_checkpoint
from mt.config import CONF_DIR
from mt.device import resolve_device
from mt.errors import MTError, one_line_errors, require_values
from mt.runtime import apply as apply_runtime
from mt.simul.agent import WaitKAgent
from mt.translate import model_from_checkpoint, search_config, source_limit

log = logging.getLogger(__name__)
END_OF_LINE = None  # the event that ends a sentence


def words_from(fd: int, chunk: int = 65536) -> Iterator[str | None]:
    """Source words as soon as they are complete, and ``END_OF_LINE`` at each line end, from a file descriptor
    read with ``os.read`` (returns what has arrived). Invalid UTF-8 becomes U+FFFD; a last line without a
    newline still ends a sentence."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    word, in_line = "", False
    while True:
        data = os.read(fd, chunk)
        text = decoder.decode(data, final=not data)
        for ch in text:
            if ch == "\n":
                if word:
                    yield word
                yield END_OF_LINE
                word, in_line = "", False
            elif ch.isspace():
                in_line = True
                if word:
                    yield word
                    word = ""
            else:
                word += ch
                in_line = True
        if not data:
            break
    if word:
        yield word
    if in_line:
        yield END_OF_LINE


def stream(cfg: DictConfig, fd: int = 0, out: TextIO = sys.stdout) -> int:
    """Translate the stream on ``fd`` to ``out``; returns the number of lines translated."""
    require_values(cfg)
    model, tokenizer = model_from_checkpoint(load_checkpoint(cfg.ckpt), str(cfg.ckpt))
    if not model.traits.streaming:
        raise MTError(f"{cfg.ckpt} has a full-sentence encoder; mt.stream needs a streaming model (train with "
                      "model.bidirectional=false for the LSTM or model.causal_encoder=true for the Transformer)")
    search = search_config(cfg.decode)
    if search.beam_size != 1:
        raise MTError(f"decode.beam_size={search.beam_size}: mt.stream decodes greedily (decode.beam_size=1); "
                      "beam search within wait-k is available in evaluate.py decode=wait_k")
    device = resolve_device(str(cfg.device))
    model = model.to(device).eval()
    agent = WaitKAgent(model, tokenizer, int(cfg.decode.wait_k), search, source_limit(model, cfg.decode))
    lines, started = 0, False
    with torch.inference_mode():
        for event in words_from(fd):
            words = agent.finish() if event is END_OF_LINE else agent.read_word(event)
            if words:
                out.write((" " if started else "") + " ".join(words))
                started = True
            if event is END_OF_LINE:
                out.write("\n")
                if agent.dropped:
                    log.warning("line %d: %d source subwords beyond the length limit were dropped", lines + 1,
                                agent.dropped)
                agent.reset()
                lines, started = lines + 1, False
            out.flush()
    return lines


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="stream")
def main(cfg: DictConfig) -> None:
    apply_runtime(cfg.runtime)
    with one_line_errors():
        stream(cfg)


if __name__ == "__main__":
    main()
