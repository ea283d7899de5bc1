"""The SASRec network: the math alone. Item ids (B, T) -> output vectors (B, T, d), scored against the shared
item embeddings; the estimator (`estimator.py`) owns batches, loss, device and epochs."""

from __future__ import annotations

import torch
from torch import nn

from deepshelf.models.layers import Dropout, Norm, TransformerBlock, causal_padding_mask


class SASRecNetwork(nn.Module):
    """Causal transformer over item sequences. Index 0 is padding; item i is stored at index i + 1.

    Positions count the real (non-padding) items, from the oldest or back from the newest, so left-padding a
    sequence to any length changes nothing.
    """

    def __init__(self, n_items: int, max_len: int, dim: int, layers: int, heads: int, dropout: float,
                 n_types: int = 0, ffn_mult: int = 1, init_std: float | None = None, norm: Norm = "pre",
                 from_oldest: bool = True, scale_items: bool = False, attn_dropout: float = 0.0):
        super().__init__()
        self.from_oldest = from_oldest
        self.item_scale = dim**0.5 if scale_items else 1.0
        self.item_embeddings = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.position_embeddings = nn.Embedding(max_len, dim)
        self.type_embeddings = nn.Embedding(n_types + 1, dim, padding_idx=0) if n_types else None
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, dropout, ffn_mult, norm, attn_dropout)
                                    for _ in range(layers))
        # pre- and query-norm: one LayerNorm on the blocks' output; post-norm normalises the summed input
        # embeddings instead (each block already ends in one), as BERT and RecBole's SASRec do
        self.post_norm = norm == "post"
        self.norm = nn.LayerNorm(dim)
        self.drop = Dropout(dropout)
        for emb in (self.item_embeddings, self.position_embeddings, self.type_embeddings):
            if emb is not None:  # default: unit-variance logits at init (LayerNorm'd outputs have norm ~sqrt(dim))
                nn.init.normal_(emb.weight, std=init_std or dim**-0.5)
        with torch.no_grad():
            self.item_embeddings.weight[0].zero_()

    def embed_items(self, items: torch.Tensor) -> torch.Tensor:
        """int64 (B, T) -> input vectors (B, T, d); a content-aware network overrides this alone."""
        return self.item_embeddings(items)

    def forward(self, items: torch.Tensor, types: torch.Tensor | None = None, newest_only: bool = False
                ) -> torch.Tensor:
        """items, types: int64 (B, T), left-padded with 0 -> output vectors (B, T, d), or (B, 1, d) for the newest
        position alone (`newest_only`: the last block computes queries and feed-forward for that position only)."""
        keep = items > 0  # (B, T)
        if self.from_oldest:  # (B, T) index among the real items; padding gets 0 and is masked anyway
            positions = (keep.cumsum(1) - 1).clamp(min=0)
        else:  # (T,) distance from the newest item
            positions = torch.arange(items.shape[1] - 1, -1, -1, device=items.device)
        x = self.embed_items(items) * self.item_scale + self.position_embeddings(positions)  # (B, T, d)
        if self.type_embeddings is not None and types is not None:
            x = x + self.type_embeddings(types)
        if self.post_norm:
            x = self.norm(x)
        x = self.drop(x) * keep[..., None]
        mask = causal_padding_mask(keep)  # (B, 1, T, T)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, newest_only=newest_only and i == len(self.blocks) - 1)
        return x if self.post_norm else self.norm(x)  # (B, T or 1, d)

    @property
    def output_embeddings(self) -> torch.Tensor:
        return self.item_embeddings.weight[1:]  # (n_items, d): input and output share the table

    def output_vectors(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The vectors scored against `output_embeddings`: (B, T, d) -> (B, T, d'); here the outputs as they are."""
        return hidden

