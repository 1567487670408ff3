"""Greedy wait-k translation of a live source stream, one sentence at a time, with a streaming model.

The agent is fed whole source words as they arrive (a word's subwords are known once its end has arrived:
sentencepiece splits at whitespace, so tokenizing word by word gives the sentence's own subwords). It reads
the subwords one at a time through the model's incremental encoder (``Seq2Seq.start_stream`` / ``read``:
each read costs one source position, nothing is re-read), extends the decoder's memory by the new
positions (``extend_memory``) and writes whenever wait-k allows: target token t once t + k - 1 source
subwords have been read, then everything once the sentence has ended. Read/write interleaving, masking and
EOS rules are those of :func:`mt.simul.search.simul_greedy`, so on the same source it writes the same
tokens with the same schedule. Target words are released as soon as they are complete (the next word has
started, or the translation ended).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mt.models.base import DecoderState, EncoderOut, Seq2Seq
from mt.search import SearchConfig, masked_log_probs, max_lengths
from mt.simul.policy import check_k
from mt.tokenizer import Tokenizer


class WaitKAgent:
    """Stateful greedy wait-k over one sentence at a time (call :meth:`reset` between sentences)."""

    def __init__(self, model: Seq2Seq, tokenizer: Tokenizer, k: int, cfg: SearchConfig,
                 max_src_len: int | None = None) -> None:
        self.model, self.tokenizer, self.k, self.cfg = model, tokenizer, check_k(k), cfg
        self.max_src_len = max_src_len  # real subwords read per sentence at most; later words are dropped
        self.device = next(model.parameters()).device
        self.reset()

    def reset(self) -> None:
        """Start a new sentence."""
        self.stream = self.model.start_stream(1, self.device)
        self.pending: list[EncoderOut] = []  # positions read before the decoder started
        self.final: Tensor | None = None  # the encoder's final state after the last read (None: it has none)
        self.state: DecoderState | None = None
        self.n_read = 0  # real source subwords read
        self.ended = False  # the source sentence is complete (EOS read)
        self.done = False  # the translation is complete (EOS written or max length reached)
        self.out: list[int] = []  # written target tokens
        self.delays: list[int] = []  # source subwords read when each was written
        self.released = 0  # target words already returned
        self.dropped = 0  # source subwords dropped for the length limit

    # --- reading ------------------------------------------------------------------------------------------
    def read_word(self, word: str) -> list[str]:
        """Read one complete source word; returns the target words completed meanwhile."""
        if self.ended:
            raise RuntimeError("read_word after finish(); call reset() for the next sentence")
        for token in self.tokenizer.encode([word])[0]:
            if self.max_src_len is not None and self.n_read >= self.max_src_len:
                self.dropped += 1
                continue
            self._read(token)
            self.n_read += 1
            self._write_while_allowed()
        return self._release()

    def finish(self) -> list[str]:
        """The source sentence has ended: read EOS, write the rest; returns the remaining target words."""
        if not self.ended:
            self._read(self.model.eos_id)
            self.ended = True
            if self.n_read == 0:  # empty source -> empty translation, as in batch translation
                self.done = True
            self._write_while_allowed()
        return self._release(final=True)

    def _read(self, token: int) -> None:
        new, self.stream = self.model.read(self.stream, torch.tensor([[token]], device=self.device))  # (1, 1, M)
        self.final = new.final
        if self.state is None:
            self.pending.append(new)
        else:
            self.state = self.model.extend_memory(self.state, new)

    # --- writing ------------------------------------------------------------------------------------------
    def _write_while_allowed(self) -> None:
        while not self.done and (self.ended or self.n_read >= len(self.out) + self.k):
            self._write()

    def _start_decoder(self) -> None:
        memory = torch.cat([e.memory for e in self.pending], dim=1)  # (1, s, M)
        mask = torch.cat([e.mask for e in self.pending], dim=1)  # (1, s)
        self.state = self.model.init_state(EncoderOut(memory=memory, mask=mask, final=self.final))
        self.pending = []

    def _write(self) -> None:
        if self.state is None:
            self._start_decoder()
        step = len(self.out)
        last = self.out[-1] if self.out else self.model.bos_id
        logits, self.state = self.model.step(torch.tensor([last], device=self.device), self.state)  # (1, V)
        if self.ended:
            max_len = max_lengths(torch.tensor([self.n_read + 1]), self.cfg, self.model.max_target_len)
        else:  # the limit depends on the source length, unknown until it ends: none meanwhile
            max_len = torch.tensor([step + 1])  # (step >= max_len is what forces EOS)
        unfinished = torch.tensor([not self.ended], device=self.device)
        lprobs = masked_log_probs(self.model, logits, step, max_len.to(self.device), self.cfg, unfinished)
        token = int(lprobs.argmax(-1))
        if token == self.model.eos_id:
            self.done = True
            return
        self.out.append(token)
        self.delays.append(self.n_read)

    def _release(self, final: bool = False) -> list[str]:
        """Target words complete so far and not yet returned (all of them when ``final``)."""
        words = self.tokenizer.decode([self.out])[0].split()
        complete = words if final else words[:-1]  # the last word may still grow
        new = complete[self.released:]
        self.released += len(new)
        return new
