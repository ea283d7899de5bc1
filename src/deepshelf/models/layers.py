"""Transformer building blocks for sequential recommenders (causal self-attention, Vaswani et al. 2017).

Sequences are left-padded with item index 0; `keep` masks are bool (B, T), true at real items.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


def causal_padding_mask(keep: torch.Tensor) -> torch.Tensor:
    """Bool attention mask (B, 1, T, T): query t may attend key s iff s <= t and s is a real item, or s == t.

    Letting every position see itself keeps padded rows from being fully masked (which would give NaNs); their
    outputs are never used, and no real position ever attends to padding, so padding cannot change any score.
    """
    T = keep.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=keep.device).tril()  # (T, T)
    eye = torch.eye(T, dtype=torch.bool, device=keep.device)
    return ((causal & keep[:, None, :]) | eye)[:, None]  # (B, 1, T, T)


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.dropout = dropout  # on the attention weights, in training
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, d) keys and values, and queries unless `query` (B, Tq, d) is given (Tq = T, or fewer: the
        newest positions, with `mask` cut to their rows)."""
        B, T, d = x.shape
        split = (B, -1, self.heads, d // self.heads)  # -> (B, h, T, d/h) after a transpose
        if query is None:
            q, k, v = self.qkv(x).view(B, T, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        else:  # the same weights, with the queries from their own input
            w, b = self.qkv.weight, self.qkv.bias
            q = F.linear(query, w[:d], b[:d]).view(split).transpose(1, 2)
            k, v = F.linear(x, w[d:], b[d:]).view(B, T, 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if x.device.type == "cpu":  # fp32 attention on CPU even under bf16 autocast: the form the CPU runs used
            q, k, v = q.float(), k.float(), v.float()
        # Attention-weight dropout is off by default: on CPU it draws a (B, h, T, T) random mask, the single most
        # expensive op of a training step.
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, h, Tq, d/h)
        return self.proj(y.transpose(1, 2).reshape(B, q.shape[2], d))  # (B, Tq, d)


class Dropout(nn.Module):
    """`nn.Dropout`'s math (training: zero each element with probability `p`, scale the rest by 1 / (1 - p);
    evaluation: identity) with a cheaper mask on CPU: there `bernoulli_`, which `nn.Dropout` draws its mask with,
    cost 6% of a SASRec training step on Beauty, and a mask from `torch.rand_like` is drawn in a fraction of that
    time (`benchmarks/recbole_compare.py`'s step-cost table measures both). Elsewhere `F.dropout` (fused on GPU)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or self.p == 1.0:
            return F.dropout(x, self.p, training=True)
        mask = (torch.rand_like(x, dtype=torch.float32) >= self.p).to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


Norm = Literal["pre", "post", "query"]


class TransformerBlock(nn.Module):
    """One causal self-attention block, in one of three LayerNorm placements (`norm`):

    - "pre": x + attn(LN(x)), then x + FFN(LN(x)); trains stably without a long warm-up.
    - "post" (the original Transformer, BERT and RecBole's SASRec): LN(x + attn(x)), then LN(x + FFN(x)).
    - "query" (the original SASRec code, and SASRec+ after it): q = LN(x); x = q + attn(queries q, keys and
      values x); then LN(x) + FFN(LN(x)). Only the queries are normalised, and the residual carries them.

    The feed-forward width is `ffn_mult * dim`: SASRec uses 1 (its point-wise FFN), GPT-style models 4.
    Dropout sits on the two residual branches, and with `attn_dropout` on the attention weights too; a mask
    inside the FFN costs CPU time for no gain.
    """

    def __init__(self, dim: int, heads: int, dropout: float, ffn_mult: int = 1, norm: Norm = "pre",
                 attn_dropout: float = 0.0):
        super().__init__()
        self.norm = norm
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, attn_dropout)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Linear(ffn_mult * dim, dim))
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, newest_only: bool = False) -> torch.Tensor:
        """(B, T, d) -> (B, T, d); with `newest_only`, (B, 1, d): the newest position's output alone, all a
        recommendation reads from the last block (every position still serves as a key and value)."""
        if newest_only:
            mask = mask[:, :, -1:]
        if self.norm == "post":
            q = x[:, -1:] if newest_only else x
            x = self.norm1(q + self.drop(self.attn(x, mask, query=q if newest_only else None)))  # (B, Tq, d)
            return self.norm2(x + self.drop(self.ffn(x)))
        if self.norm == "query":
            q = self.norm1(x)
            q = q[:, -1:] if newest_only else q
            x = self.norm2(q + self.drop(self.attn(x, mask, query=q)))  # (B, Tq, d)
            return x + self.drop(self.ffn(x))
        h = self.norm1(x)
        q = h[:, -1:] if newest_only else None
        x = (x[:, -1:] if newest_only else x) + self.drop(self.attn(h, mask, query=q))  # (B, Tq, d)
        return x + self.drop(self.ffn(self.norm2(x)))
