"""Transformer building blocks for sequential recommenders (causal self-attention, Vaswani et al. 2017).

Sequences are left-padded with item index 0; `keep` masks are bool (B, T), true at real items.
"""

from __future__ import annotations

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
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, h, T, d/h)
        # No dropout on the attention weights: on CPU it forces a (B, h, T, T) random mask, the single most
        # expensive op of a training step, for no measurable gain over dropout on the residual branches.
        if x.device.type == "cpu":  # CPU flash attention's bf16 backward is ~2x slower than its fp32 one
            q, k, v = q.float(), k.float(), v.float()
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, h, T, d/h)
        return self.proj(y.transpose(1, 2).reshape(B, T, d))  # (B, T, d)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(LN(x)), then x + FFN(LN(x)); pre-norm trains stably without a long warm-up.
    Post-norm (`post_norm=True`, the original Transformer and SASRec's RecBole form): LN(x + attn(x)), then
    LN(x + FFN(x)).

    The feed-forward width is `ffn_mult * dim`: SASRec uses 1 (its point-wise FFN), GPT-style models 4.
    Dropout sits on the two residual branches only; a mask inside the FFN costs CPU time for no gain.
    """

    def __init__(self, dim: int, heads: int, dropout: float, ffn_mult: int = 1, post_norm: bool = False):
        super().__init__()
        self.post_norm = post_norm
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Linear(ffn_mult * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.post_norm:
            x = self.norm1(x + self.drop(self.attn(x, mask)))  # (B, T, d)
            return self.norm2(x + self.drop(self.ffn(x)))  # (B, T, d)
        x = x + self.drop(self.attn(self.norm1(x), mask))  # (B, T, d)
        return x + self.drop(self.ffn(self.norm2(x)))  # (B, T, d)
