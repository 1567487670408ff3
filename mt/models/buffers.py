"""Append-only buffers for decoder states that grow while decoding (the source memory of a streaming decoder).

Appending with ``torch.cat`` copies the whole buffer at every append and leaves a freed block of every size behind
(with ``runtime.tune_malloc`` glibc keeps those blocks, so a long stream's memory grew far beyond the state's own
size). A buffer here has spare capacity: an append writes into it in place and only a full buffer is copied, into
one twice as large (amortised O(1) per appended position, O(log n) copies). The state keeps the exact length
elsewhere (the source mask) and readers slice ``buffer[:, :length]``. Writes land only beyond the length the
extended state saw, so an earlier state stays valid; extend any one state only once (two extensions of the same
state would write the same positions).
"""

from __future__ import annotations

from torch import Tensor


def append(buf: Tensor, length: int, new: Tensor, dim: int) -> Tensor:
    """``buf`` holding ``length`` valid positions along ``dim`` with ``new`` written after them; the same tensor
    when it had room, else a copy into twice the capacity."""
    n = new.size(dim)
    if buf.size(dim) < length + n:  # full: double (at least fit the new positions), keep the valid part
        shape = list(buf.shape)
        shape[dim] = max(2 * buf.size(dim), length + n)
        grown = buf.new_empty(shape)
        grown.narrow(dim, 0, length).copy_(buf.narrow(dim, 0, length))
        buf = grown
    buf.narrow(dim, length, n).copy_(new)
    return buf
