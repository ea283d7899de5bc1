"""The content-aware SASRec network: an item vector is `warm * id_embedding + content_projection(text)`, and
each output carries a learned multiple of the newest item's text vector in its top singular directions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepshelf.models.sasrec.network import SASRecNetwork


class ContentSASRecNetwork(SASRecNetwork):
    """SASRecNetwork whose item table is `warm * id_embeddings + content_projection(content)`."""

    def __init__(self, n_items: int, content_dim: int, id_dropout: float, similarity_dim: int = 0, **kwargs):
        super().__init__(n_items, **kwargs)
        dim = self.item_embeddings.embedding_dim
        self.register_buffer("content", torch.zeros(n_items + 1, content_dim))  # row 0: padding
        # text vectors in their top singular directions (row 0: padding), and the weight of their similarity
        self.register_buffer("similarity", torch.zeros(n_items + 1, similarity_dim))
        # Both scalars are learned as logarithms: Adam moves a parameter by about lr per step whatever its size,
        # so a plain weight of 5 would barely move in a whole training run (measured: 5.0 -> 4.7), while its
        # logarithm can change by a factor of e per thousand steps at lr 1e-3.
        self.log_similarity_weight = nn.Parameter(torch.tensor(math.log(5.0))) if similarity_dim else None
        self.log_cold_similarity_scale = nn.Parameter(torch.tensor(0.0)) if similarity_dim else None
        self.register_buffer("imputed", torch.zeros(n_items + 1, dim))  # id part of cold rows, set after training
        self.register_buffer("warm", torch.zeros(n_items + 1))  # 1 for items seen in training events
        self.content_projection = nn.Linear(content_dim, dim, bias=False)
        nn.init.normal_(self.content_projection.weight, std=content_dim**-0.5 * dim**-0.5)
        self.id_dropout = id_dropout
        self._table: torch.Tensor | None = None
        self._keep: torch.Tensor | None = None  # this step's id-dropout mask (training)

    def item_table(self) -> torch.Tensor:
        """(n_items + 1, d) item vectors; in training, a fresh random id-dropout mask per call."""
        keep = self.warm
        if self.training and self.id_dropout > 0:
            keep = keep * (torch.rand_like(keep) >= self.id_dropout)
        self._keep = keep
        table = self.item_embeddings.weight * keep[:, None] + self.content_projection(self.content)
        if self.training:
            # Products without events are never a training target; as ever-present negatives they would teach
            # the projection to bury exactly their texts. In training they score a constant 0 instead.
            return table * self.warm[:, None]
        table = table + self.imputed  # products without events borrow their text neighbours' id vectors
        return table * (torch.arange(len(table), device=table.device) > 0)[:, None]  # padding stays zero

    def embed_items(self, items: torch.Tensor) -> torch.Tensor:
        self._table = self.item_table()  # the same (masked) table scores this step's outputs
        return F.embedding(items, self._table)  # (B, T, d)

    @property
    def output_embeddings(self) -> torch.Tensor:
        table = self._table if (self.training and self._table is not None) else self.item_table()
        if self.log_similarity_weight is not None:
            # An item whose id part is missing (no events, or dropped in this step) leans on its words: its text
            # similarity counts a learned factor more (or less), which the dropped items teach in training.
            keep = self._keep if self.training and self._keep is not None else self.warm
            scale = keep + (1 - keep) * self.log_cold_similarity_scale.exp()
            similarity = self.similarity * scale[:, None]
            if self.training:
                similarity = similarity * self.warm[:, None]  # as in item_table
            table = torch.cat([table, similarity], dim=1)  # (n_items + 1, d + similarity_dim)
        return table[1:]

    def output_vectors(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if self.log_similarity_weight is None:
            return hidden
        newest = self.log_similarity_weight.exp() * F.embedding(items, self.similarity)  # (B, T, similarity_dim)
        return torch.cat([hidden, newest.to(hidden.dtype)], dim=-1)  # (B, T, d + similarity_dim)

    @torch.no_grad()
    def impute_cold(self, k: int) -> None:
        """Give each product without events the similarity-weighted mean id vector of its `k` nearest products
        with events by text. Without it a cold product lacks the id part that makes up most of a warm product's
        score and ranks below every relevant warm one, however well its words match; with it, it scores like the
        products it reads like. k = 0 clears the imputation."""
        net = self
        net.imputed.zero_()
        if k <= 0:
            return
        warm = torch.nonzero(net.warm > 0).flatten()
        cold = torch.nonzero(net.warm[1:] == 0).flatten() + 1
        if not len(warm) or not len(cold):
            return
        text = F.normalize(net.content, dim=1)
        ids = net.item_embeddings.weight
        for start in range(0, len(cold), 1024):  # (1024, n_warm) similarities at a time
            rows = cold[start : start + 1024]
            sims, nearest = (text[rows] @ text[warm].T).topk(min(k, len(warm)), dim=1)  # (b, k)
            weights = sims.clamp_min(0) + 1e-6
            weights = weights / weights.sum(1, keepdim=True)
            net.imputed[rows] = (weights[..., None] * ids[warm[nearest]]).sum(1)
