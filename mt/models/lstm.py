"""LSTM encoder-decoder with attention (Luong et al. 2015; Bahdanau et al. 2015 attention as an option).

Encoder: shared embedding -> multi-layer bidirectional LSTM over packed sequences.
Bridge: the top encoder layer's final forward/backward hidden states -> initial (h, c) of every decoder layer.
Decoder: multi-layer LSTM -> attention over the encoder states -> attentional hidden
``tanh(W_c [context; h])`` -> (projection to embed_dim when the output is tied) -> logits.

Without input feeding the decoder runs one fused ``nn.LSTM`` call over all target positions, then attends
from all positions at once. With input feeding the previous attentional hidden is concatenated to the next
input, which forces a loop over positions. ``decode`` and ``step`` share the same code (``_advance``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mt.models.attention import build_attention
from mt.models.base import DecoderState, EncoderOut, ModelTraits, Seq2Seq


class LSTMEncoder(nn.Module):
    """Bidirectional multi-layer LSTM over packed (unsorted) sequences."""

    def __init__(self, embed: nn.Embedding, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.embed = embed
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(embed.embedding_dim, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0,
                            bidirectional=True, batch_first=True)

    def forward(self, src: Tensor, src_lengths: Tensor) -> Tensor:
        """src (B, S), src_lengths (B,) -> memory (B, S, 2H), zeros at padded positions."""
        x = self.dropout(self.embed(src))  # (B, S, E)
        packed = pack_padded_sequence(x, src_lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))  # (B, S, 2H)
        return memory


class LSTMSeq2Seq(Seq2Seq):
    """Bidirectional-LSTM encoder, attentional LSTM decoder.

    Decoder state (all batch-first): ``h``, ``c`` (B, layers, H); ``feed`` (B, H) with input feeding;
    ``memory`` (B, S, 2H_enc); ``keys`` (B, S, K) precomputed attention keys; ``mask`` (B, S) bool.
    """

    def __init__(self, *, vocab_size: int, embed_dim: int, encoder_hidden: int, encoder_layers: int,
                 decoder_hidden: int, decoder_layers: int, attention: str, input_feeding: bool, dropout: float,
                 share_embeddings: bool, tie_output: bool) -> None:
        super().__init__(vocab_size)
        self.input_feeding = input_feeding
        self.decoder_layers = decoder_layers
        self.decoder_hidden = decoder_hidden
        memory_dim = 2 * encoder_hidden

        self.src_embed = nn.Embedding(vocab_size, embed_dim, padding_idx=self.pad_id)
        self.tgt_embed = self.src_embed if share_embeddings else nn.Embedding(
            vocab_size, embed_dim, padding_idx=self.pad_id)
        self.encoder = LSTMEncoder(self.src_embed, encoder_hidden, encoder_layers, dropout)
        # bridge: top encoder final state (B, 2H_enc) -> initial h and c of every decoder layer
        self.bridge = nn.Linear(memory_dim, 2 * decoder_layers * decoder_hidden)

        self.dropout = nn.Dropout(dropout)
        rnn_input = embed_dim + (decoder_hidden if input_feeding else 0)
        self.rnn = nn.LSTM(rnn_input, decoder_hidden, num_layers=decoder_layers,
                           dropout=dropout if decoder_layers > 1 else 0.0, batch_first=True)
        self.attention = build_attention(attention, decoder_hidden, memory_dim)
        self.combine = nn.Linear(memory_dim + decoder_hidden, decoder_hidden, bias=False)
        if tie_output:
            self.out_proj: nn.Module = nn.Linear(decoder_hidden, embed_dim, bias=False)
            self.output = nn.Linear(embed_dim, vocab_size)
            self.output.weight = self.tgt_embed.weight
        else:
            self.out_proj = nn.Identity()
            self.output = nn.Linear(decoder_hidden, vocab_size)
        self._init_embeddings(embed_dim)

    def _init_embeddings(self, embed_dim: int) -> None:
        for emb in dict.fromkeys([self.src_embed, self.tgt_embed]):  # each matrix once, fixed order
            nn.init.normal_(emb.weight, std=1.0 / math.sqrt(embed_dim))
            nn.init.zeros_(emb.weight[self.pad_id])

    # --- encoder -------------------------------------------------------------------------------------------
    def encode(self, src: Tensor, src_lengths: Tensor) -> EncoderOut:
        memory = self.encoder(src, src_lengths)  # (B, S, 2H_enc)
        return EncoderOut(memory=memory, mask=self.lengths_to_mask(src_lengths, src.size(1)))

    def _bridge(self, enc: EncoderOut) -> tuple[Tensor, Tensor]:
        """Initial decoder (h, c), each (B, layers, H), from the encoder's final top-layer states.

        The forward direction's final state is its output at the last real position, the backward one's
        is its output at position 0, so both are read back from the memory (no side channel needed).
        """
        memory = enc.memory  # (B, S, 2H_enc)
        half = memory.size(-1) // 2
        last = (enc.mask.sum(1) - 1).clamp(min=0)  # (B,)
        rows = torch.arange(memory.size(0), device=memory.device)
        final = torch.cat([memory[rows, last, :half], memory[:, 0, half:]], dim=-1)  # (B, 2H_enc)
        init = torch.tanh(self.bridge(final))  # (B, 2 * layers * H)
        init = init.view(init.size(0), 2, self.decoder_layers, self.decoder_hidden)  # (B, 2, layers, H)
        return init[:, 0].contiguous(), init[:, 1].contiguous()  # (B, layers, H) each

    @property
    def traits(self) -> ModelTraits:
        return ModelTraits(family="recurrent", decoder_state="constant")

    # --- decoder -------------------------------------------------------------------------------------------
    def init_state(self, enc: EncoderOut, variant: str | None = None) -> DecoderState:
        h, c = self._bridge(enc)  # (B, layers, H) each
        state = {"h": h, "c": c, "memory": enc.memory, "mask": enc.mask,
                 "keys": self.attention.project_keys(enc.memory)}  # keys: (B, S, K)
        if self.input_feeding:
            state["feed"] = h.new_zeros(h.size(0), self.decoder_hidden)  # (B, H)
        return state

    def _advance(self, emb: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """Run the LSTM and attention over emb (B, T, E') from state -> attentional hidden (B, T, H)."""
        h0 = state["h"].transpose(0, 1).contiguous()  # (layers, B, H)
        c0 = state["c"].transpose(0, 1).contiguous()  # (layers, B, H)
        out, (h_n, c_n) = self.rnn(emb, (h0, c0))  # out (B, T, H); h_n, c_n (layers, B, H)
        att = self.attention(out, state["keys"], state["memory"], state["mask"])  # context (B, T, 2H_enc)
        hidden = torch.tanh(self.combine(torch.cat([att.context, out.to(att.context.dtype)], dim=-1)))  # (B,T,H)
        new_state = dict(state, h=h_n.transpose(0, 1), c=c_n.transpose(0, 1))  # (B, layers, H)
        if self.input_feeding:
            new_state["feed"] = hidden[:, -1]  # (B, H)
        return hidden, new_state

    def _logits(self, hidden: Tensor) -> Tensor:
        """Attentional hidden (B, T, H) -> logits (B, T, V)."""
        return self.output(self.out_proj(self.dropout(hidden)))

    def decode(self, enc: EncoderOut, tgt_in: Tensor) -> Tensor:
        state = self.init_state(enc)
        emb = self.dropout(self.tgt_embed(tgt_in))  # (B, T, E)
        if not self.input_feeding:
            hidden, _ = self._advance(emb, state)  # (B, T, H): one fused LSTM call over all positions
            return self._logits(hidden)
        steps = []
        for t in range(tgt_in.size(1)):
            x = torch.cat([emb[:, t:t + 1], state["feed"][:, None].to(emb.dtype)], dim=-1)  # (B, 1, E + H)
            hidden, state = self._advance(x, state)  # (B, 1, H)
            steps.append(hidden)
        return self._logits(torch.cat(steps, dim=1))  # (B, T, H) -> (B, T, V)

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        x = self.dropout(self.tgt_embed(tokens[:, None]))  # (B, 1, E)
        if self.input_feeding:
            x = torch.cat([x, state["feed"][:, None].to(x.dtype)], dim=-1)  # (B, 1, E + H)
        hidden, state = self._advance(x, state)  # (B, 1, H)
        return self._logits(hidden)[:, 0], state  # (B, V)
