"""Attentional LSTM decoder (Luong et al. 2015; Bahdanau et al. 2015 scoring as an option), any encoder.

Multi-layer LSTM -> attention over the encoder memory -> attentional hidden ``tanh(W_c [context; h])`` ->
(projection to the embedding size when the output is tied) -> logits. Without input feeding the decoder runs
one fused ``nn.LSTM`` call over all target positions, then attends from all positions at once; with input
feeding the previous attentional hidden joins the next input, which forces a loop. Teacher forcing
(``features``) and ``step`` share ``_advance``.

Initial state (``bridge``): ``final`` = tanh(W · the encoder's ``EncoderOut.final``) (a recurrent encoder's
final states); ``mean`` = tanh(W · masked mean of the memory) (any encoder); ``none`` = zeros. Either way
(h, c) of every layer start from it. ``src_visible`` limits the attention only: for simultaneous decoding use
``bridge: none``, or ``final`` with a streaming encoder given the ``final`` of the visible prefix (mt.simul does).

State (all batch-first): ``h``, ``c`` (B, layers, H); ``feed`` (B, H) with input feeding; ``memory``
(B, S, M); ``keys`` (B, S, K) precomputed attention keys; ``mask`` (B, S) bool.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mt.models.attention import build_attention
from mt.models.base import DecoderState, EncoderOut, visibility_mask
from mt.models.buffers import append
from mt.models.composed import Decoder
from mt.models.dropout import Dropout
from mt.models.grouping import per_row
from mt.models.rnn import LSTM

BRIDGES = ("final", "mean", "none")


class AttnLSTMDecoder(Decoder):
    """LSTM decoder with attention over a memory of size ``memory_dim``; output tied to ``embed`` if asked."""

    decoder_state = "constant"

    def __init__(self, *, embed: nn.Embedding, memory_dim: int, hidden: int, layers: int, attention: str,
                 input_feeding: bool, dropout: float, tie_output: bool, bridge: str) -> None:
        super().__init__()
        if bridge not in BRIDGES:
            raise ValueError(f"bridge={bridge!r} is unknown; use one of {', '.join(BRIDGES)}")
        self.embed = embed
        self.input_feeding = input_feeding
        self.layers = layers
        self.hidden = hidden
        self.bridge_kind = bridge
        embed_dim = embed.embedding_dim
        # bridge: encoder summary (B, M) -> initial h and c of every decoder layer
        self.bridge = nn.Linear(memory_dim, 2 * layers * hidden) if bridge != "none" else None
        self.dropout = Dropout(dropout)
        self.rnn = LSTM(embed_dim + (hidden if input_feeding else 0), hidden, num_layers=layers,
                           dropout=dropout if layers > 1 else 0.0, batch_first=True)
        self.attention = build_attention(attention, hidden, memory_dim)
        self.combine = nn.Linear(memory_dim + hidden, hidden, bias=False)
        if tie_output:
            self.out_proj: nn.Module = nn.Linear(hidden, embed_dim, bias=False)
            self.output = nn.Linear(embed_dim, embed.num_embeddings)
            self.output.weight = embed.weight
        else:
            self.out_proj = nn.Identity()
            self.output = nn.Linear(hidden, embed.num_embeddings)

    def _initial(self, enc: EncoderOut) -> tuple[Tensor, Tensor]:
        """Initial (h, c), each (B, layers, H), as ``bridge`` says."""
        batch = enc.memory.size(0)
        if self.bridge is None:
            zeros = enc.memory.new_zeros(batch, self.layers, self.hidden)  # (B, layers, H)
            return zeros, zeros
        if self.bridge_kind == "final":
            if enc.final is None:
                raise ValueError("bridge=final needs an encoder with a final state (EncoderOut.final); "
                                 "use bridge=mean or bridge=none with this encoder")
            summary = enc.final  # (B, M)
        else:
            weights = enc.mask.to(enc.memory.dtype)[:, :, None]  # (B, S, 1)
            summary = (enc.memory * weights).sum(1) / weights.sum(1).clamp(min=1)  # (B, M)
        init = torch.tanh(self.bridge(summary))  # (B, 2 * layers * H)
        init = init.view(batch, 2, self.layers, self.hidden)  # (B, 2, layers, H)
        return init[:, 0].contiguous(), init[:, 1].contiguous()  # (B, layers, H) each

    def init_state(self, enc: EncoderOut, variant: str = "default") -> DecoderState:
        h, c = self._initial(enc)  # (B, layers, H) each
        state = {"h": h, "c": c, "memory": enc.memory, "mask": enc.mask,
                 "keys": self.attention.project_keys(enc.memory)}  # keys: (B, S, K)
        if self.input_feeding:
            state["feed"] = h.new_zeros(h.size(0), self.hidden)  # (B, H)
        return state

    def source_state_keys(self, state: DecoderState) -> frozenset[str]:
        return frozenset(("memory", "mask", "keys"))

    def extend_memory(self, state: DecoderState, new: EncoderOut) -> DecoderState:
        """Append new source positions (memory (B, n, M)) and their attention keys to the state.

        ``memory`` and ``keys`` are append-only buffers (``buffers.py``) whose valid length is the mask's."""
        s = state["mask"].size(1)
        return dict(state, memory=append(state["memory"], s, new.memory, dim=1),  # (B, >= S + n, M)
                    keys=append(state["keys"], s, self.attention.project_keys(new.memory), dim=1),  # (B, >= S + n, K)
                    mask=torch.cat([state["mask"], new.mask], dim=1))  # (B, S + n)

    def _advance(self, emb: Tensor, state: DecoderState, mask: Tensor) -> tuple[Tensor, DecoderState, Tensor]:
        """LSTM + attention over emb (B, T, E') from state; mask (B, T or 1, S) -> attentional hidden (B, T, H),
        the new state and the attention weights (B, T, S)."""
        h0 = state["h"].transpose(0, 1).contiguous()  # (layers, B, H)
        c0 = state["c"].transpose(0, 1).contiguous()  # (layers, B, H)
        out, (h_n, c_n) = self.rnn(emb, (h0, c0))  # out (B, T, H); h_n, c_n (layers, B, H)
        s = state["mask"].size(1)  # memory and keys may have spare capacity beyond it (extend_memory)
        att = self.attention(out, state["keys"][:, :s], state["memory"][:, :s], mask)  # context (B, T, M)
        hidden = torch.tanh(self.combine(torch.cat([att.context, out.to(att.context.dtype)], dim=-1)))  # (B,T,H)
        new_state = dict(state, h=h_n.transpose(0, 1), c=c_n.transpose(0, 1))  # (B, layers, H)
        if self.input_feeding:
            new_state["feed"] = hidden[:, -1]  # (B, H)
        return hidden, new_state, att.weights

    def _features(self, hidden: Tensor) -> Tensor:
        """Attentional hidden (B, T, H) -> the output layer's input (B, T, E or H)."""
        return self.out_proj(self.dropout(hidden))

    def _teacher_forced(self, enc: EncoderOut, tgt_in: Tensor, src_visible: Tensor | None
                        ) -> tuple[Tensor, Tensor]:
        """Attentional hidden (B, T, H) and attention weights (B, T, S) over the whole target prefix."""
        state = self.init_state(enc)
        mask = visibility_mask(enc.mask, src_visible)  # (B, T or 1, S)
        emb = self.dropout(self.embed(tgt_in))  # (B, T, E)
        if not self.input_feeding:
            hidden, _, weights = self._advance(emb, state, mask)  # one fused LSTM call over all positions
            return hidden, weights
        steps, weights = [], []
        for t in range(tgt_in.size(1)):
            x = torch.cat([emb[:, t:t + 1], state["feed"][:, None].to(emb.dtype)], dim=-1)  # (B, 1, E + H)
            hidden, state, w = self._advance(x, state, mask[:, t:t + 1] if mask.size(1) > 1 else mask)  # (B, 1, H)
            steps.append(hidden)
            weights.append(w)
        return torch.cat(steps, dim=1), torch.cat(weights, dim=1)  # (B, T, H), (B, T, S)

    def features(self, enc: EncoderOut, tgt_in: Tensor, src_visible: Tensor | None = None) -> Tensor:
        hidden, _ = self._teacher_forced(enc, tgt_in, src_visible)
        return self._features(hidden)  # (B, T, E or H)

    def cross_attention(self, enc: EncoderOut, tgt_in: Tensor) -> Tensor:
        """The attention distribution over source positions at each target position (B, T, S)."""
        return self._teacher_forced(enc, tgt_in, None)[1]

    def step(self, tokens: Tensor, state: DecoderState,
             src_visible: Tensor | None = None) -> tuple[Tensor, DecoderState]:
        x = self.dropout(self.embed(tokens[:, None]))  # (B, 1, E)
        if self.input_feeding:
            x = torch.cat([x, state["feed"][:, None].to(x.dtype)], dim=-1)  # (B, 1, E + H)
        mask = state["mask"] if src_visible is None else per_row(state["mask"], tokens.size(0))  # (B or n, S)
        hidden, state, _ = self._advance(x, state, visibility_mask(mask, src_visible))  # (B, 1, H)
        return self.output(self._features(hidden))[:, 0], state  # (B, V)
