"""Shared-prefix decode attention (cascade attention, as in Hydragen, Juravsky et al. 2024).

N samples of one prompt share the prompt's keys and values. Expanding the cache to N rows copies them N
times and makes every decode step read them N times. Here the prompt K/V stay once per prompt, each
sample's generated K/V go into its own growing buffer (written in place, no per-step concatenation), and
attention is computed over the two parts separately and merged with their log-sum-exps:

    out = (e^(m1-m) * o1 + e^(m2-m) * o2) / (e^(m1-m) * l1 + e^(m2-m) * l2),  m = max(m1, m2)

where for each part o = sum_j e^(s_j - m_part) v_j, l = sum_j e^(s_j - m_part). The prompt part is one
matrix product per prompt for all its samples' queries (and query heads of one KV head), so the prompt
K/V are read once per step instead of once per sample.

Used only for decode steps (one query token per row) of full-attention models; the prompt pass runs the
model's own attention.
"""
from __future__ import annotations

import contextlib

import torch

NAME = "adaptive_shared_prefix"


class SharedPrefixState:
    """Prompt K/V (one copy per prompt) plus per-row buffers of generated K/V, for one decode loop.

    prefix: per layer (keys, values) [P, kv_heads, W, head_dim]; mask [P, W] (1 = real token);
    owner: [rows] prompt index of each batch row.
    """

    def __init__(self, prefix: list[tuple[torch.Tensor, torch.Tensor]], mask: torch.Tensor, owner: torch.Tensor,
                 capacity: int = 64):
        self.pk = [k for k, _ in prefix]
        self.pv = [v for _, v in prefix]
        self.prefix_mask = mask
        dtype = self.pk[0].dtype
        self.bias = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill(
            mask == 0, float("-inf"))[:, None, None, :]  # [P, 1, 1, W]
        self.prefix_len = mask.sum(-1)                     # real prompt tokens per prompt
        self.sk: list[torch.Tensor | None] = [None] * len(prefix)
        self.sv: list[torch.Tensor | None] = [None] * len(prefix)
        self.length = 0          # generated tokens written so far (the same for every row)
        self.capacity = capacity
        self.dtype = dtype
        self._layout(owner)

    def _layout(self, owner: torch.Tensor) -> None:
        """Rows grouped by prompt into a [P, R] grid (R = most rows of one prompt; padding repeats row 0)."""
        self.owner = owner
        P = self.prefix_mask.shape[0]
        counts = torch.bincount(owner, minlength=P)
        self.R = max(int(counts.max()), 1)
        order = torch.argsort(owner, stable=True)
        start = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(owner)
        rank[order] = torch.arange(len(owner), device=owner.device) - start[owner[order]]
        self.slot = owner * self.R + rank                    # row -> position in the flattened grid
        grid = torch.zeros(P * self.R, dtype=torch.long, device=owner.device)
        grid[self.slot] = torch.arange(len(owner), device=owner.device)
        self.grid = grid                                     # grid position -> row

    def positions(self) -> torch.Tensor:
        """Position id of the token each row feeds next: its prompt's length plus tokens generated."""
        return (self.prefix_len[self.owner] + self.length)[:, None]

    def select(self, keep: torch.Tensor) -> None:
        """Drop finished rows (batch compaction): `keep` lists the batch positions that stay."""
        self.sk = [None if k is None else k[keep] for k in self.sk]
        self.sv = [None if v is None else v[keep] for v in self.sv]
        self._layout(self.owner[keep])

    def advance(self) -> None:
        self.length += 1

    def _write(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> None:
        buf = self.sk[layer]
        if buf is None or buf.shape[2] <= self.length:
            cap = max(self.capacity, 2 * (buf.shape[2] if buf is not None else 0))
            new_k = key.new_empty((key.shape[0], key.shape[1], cap, key.shape[3]))
            new_v = value.new_empty(new_k.shape)
            if buf is not None:  # grow by doubling: amortised copies, memory only for tokens made
                new_k[:, :, : self.length] = buf[:, :, : self.length]
                new_v[:, :, : self.length] = self.sv[layer][:, :, : self.length]
            self.sk[layer], self.sv[layer] = new_k, new_v
        self.sk[layer][:, :, self.length] = key[:, :, 0]
        self.sv[layer][:, :, self.length] = value[:, :, 0]

    def row_kv(self, b: int, n_generated: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Row b's real K/V (prompt then its first n_generated tokens), per layer, for the prefix cache."""
        p = int(self.owner[b])
        keep = self.prefix_mask[p].nonzero().squeeze(-1)
        n = min(n_generated, self.length)
        out = []
        for layer in range(len(self.pk)):
            k = self.pk[layer][p][:, keep]
            v = self.pv[layer][p][:, keep]
            if n:
                k = torch.cat([k, self.sk[layer][b, :, :n]], dim=1)
                v = torch.cat([v, self.sv[layer][b, :, :n]], dim=1)
            out.append((k, v))
        return out


def _part(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, bias: torch.Tensor | None):
    """Unnormalised attention of q over one part: (max score, sum of exps, exp-weighted values), fp32 stats."""
    s = torch.matmul(q, k.transpose(-1, -2)).float() * scale
    if bias is not None:
        s = s + bias
    m = s.amax(-1, keepdim=True)
    e = torch.exp(s - m)
    return m, e.sum(-1, keepdim=True), torch.matmul(e.to(v.dtype), v).float()


def shared_prefix_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    state: SharedPrefixState | None = kwargs.get("shared_prefix")
    if state is None or query.shape[2] != 1:
        raise RuntimeError("shared-prefix attention runs only inside HFBackend's decode loop (one query token)")
    if kwargs.get("softcap") is not None or kwargs.get("sliding_window") is not None:
        raise RuntimeError("shared-prefix attention does not support softcapping or sliding windows")
    layer = module.layer_idx
    B, H, _, D = query.shape
    KVH = key.shape[1]
    G = H // KVH
    scale = scaling if scaling is not None else D ** -0.5
    state._write(layer, key, value)
    q = query.reshape(B, KVH, G, D)
    # Prompt part: every row of a prompt (and every query head of a KV head) in one product.
    P, R = state.prefix_mask.shape[0], state.R
    qp = q[state.grid].view(P, R, KVH, G, D).transpose(1, 2).reshape(P, KVH, R * G, D)
    m1, l1, o1 = _part(qp, state.pk[layer], state.pv[layer], scale, state.bias)

    def rows(t):  # [P, KVH, R*G, X] -> [rows, KVH, G, X]
        return t.view(P, KVH, R, G, -1).transpose(1, 2).reshape(P * R, KVH, G, -1)[state.slot]

    m1, l1, o1 = rows(m1), rows(l1), rows(o1)
    n = state.length + 1
    m2, l2, o2 = _part(q, state.sk[layer][:, :, :n], state.sv[layer][:, :, :n], scale, None)
    m = torch.maximum(m1, m2)
    a1, a2 = torch.exp(m1 - m), torch.exp(m2 - m)
    out = (a1 * o1 + a2 * o2) / (a1 * l1 + a2 * l2)
    return out.reshape(B, 1, H, D).to(query.dtype), None


_registered = False


def register() -> None:
    global _registered
    if not _registered:
        from transformers import AttentionInterface

        AttentionInterface.register(NAME, shared_prefix_attention)
        _registered = True


@contextlib.contextmanager
def active(model):
    """Route the model's attention through shared_prefix_attention for the enclosed decode steps."""
    register()
    cfg = model.config
    old = cfg._attn_implementation
    cfg._attn_implementation = NAME
    try:
        yield
    finally:
        cfg._attn_implementation = old
