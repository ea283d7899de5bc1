"""The content-aware SASRec network: an item vector is `warm * id_embedding + content_projection(text)`, and
each output carries a learned multiple of the newest item's text vector in its top singular directions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepshelf.models.sasrec.network import SASRecNetwork


# The cold-scoring buffers and the values that leave a trained network's scores as they were (also what a model
# saved before they existed loads with).
COLD_DEFAULTS = {"cold_model_scale": 1.0, "cold_sequence_weight": 0.0, "recency": 0.0, "cold_bias": 0.0}


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
        # How products without events are scored beside the others, set after training by `calibration` (never
        # trained; buffers, so a saved model keeps them): their id-and-text vector counts `cold_model_scale`, their
        # text's cosine to the recency-weighted mean text of the history counts `cold_sequence_weight` (a history
        # item `a` purchases back weighs `recency ** a`), and `cold_bias` is added to each of their scores.
        for name, value in COLD_DEFAULTS.items():
            self.register_buffer(name, torch.tensor(value))
        self.content_projection = nn.Linear(content_dim, dim, bias=False)
        nn.init.normal_(self.content_projection.weight, std=content_dim**-0.5 * dim**-0.5)
        self.id_dropout = id_dropout
        self._table: torch.Tensor | None = None
        self._keep: torch.Tensor | None = None  # this step's id-dropout mask (training)

    def item_table(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """(n_items + 1, d) item vectors; in training, a fresh random id-dropout mask per call. Outside training,
        `items` (any shape) asks for their rows alone: the whole table projects every product's text."""
        if not self.training:
            rows = torch.arange(len(self.warm), device=self.warm.device) if items is None else items
            # products without events borrow their text neighbours' id vectors (`imputed`)
            table = (self.item_embeddings(rows) * self.warm[rows][..., None]
                     + self.content_projection(self.content[rows]) + self.imputed[rows])
            return table * (rows > 0)[..., None]  # padding stays zero
        keep = self.warm
        if self.id_dropout > 0:
            keep = keep * (torch.rand_like(keep) >= self.id_dropout)
        self._keep = keep
        table = self.item_embeddings.weight * keep[:, None] + self.content_projection(self.content)
        # Products without events are never a training target; as ever-present negatives they would teach the
        # projection to bury exactly their texts. In training they score a constant 0 instead.
        return table * self.warm[:, None]

    def embed_items(self, items: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.item_table(items)  # (B, T, d)
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
        if not self.training:
            cold, dim = 1 - self.warm[:, None], self.item_embeddings.embedding_dim
            table = torch.cat([table[:, :dim] * (1 + cold * (self.cold_model_scale - 1)), table[:, dim:]], dim=1)
            if self.cold_columns:  # [cold * weight * text, cold * bias] against [history's text, 1]
                table = torch.cat([table, cold * self.cold_sequence_weight * self.content, cold * self.cold_bias], 1)
        return table[1:]

    @property
    def cold_columns(self) -> bool:
        """Whether the outputs carry the cold products' history-text and bias columns (only when they count)."""
        return bool(self.cold_sequence_weight != 0) or bool(self.cold_bias != 0)

    def output_vectors(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """hidden (B, Th, d) for the newest Th of the (B, T) `items` -> (B, Th, d')."""
        first = items.shape[1] - hidden.shape[1]  # the outputs are for positions first..T-1
        parts = [hidden]
        if self.log_similarity_weight is not None:
            newest = self.log_similarity_weight.exp() * F.embedding(items[:, first:], self.similarity)
            parts.append(newest.to(hidden.dtype))  # (B, Th, similarity_dim)
        if not self.training and self.cold_columns:
            text = self.history_text(items)[:, first:]  # (B, Th, content_dim)
            parts += [text.to(hidden.dtype), hidden.new_ones(*hidden.shape[:2], 1)]
        return torch.cat(parts, dim=-1) if len(parts) > 1 else hidden

    def history_text(self, items: torch.Tensor) -> torch.Tensor:
        """(B, T) left-padded items -> (B, T, content_dim): at each position, the mean text vector of the items up
        to it, the one `a` items back weighted `recency ** a` (recency 0: the newest item's alone). Padding counts
        nothing, so batching changes nothing."""
        T = items.shape[1]
        age = torch.arange(T, device=items.device)
        age = (age[:, None] - age[None, :]).float()  # (T, T): age[t, j] = t - j
        weights = torch.where(age >= 0, self.recency ** age.clamp_min(0), torch.zeros_like(age))
        weights = weights[None] * (items > 0)[:, None, :].float()  # (B, T, T)
        weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
        return weights @ F.embedding(items, self.content)  # (B, T, content_dim)

    @torch.no_grad()
    def impute_cold(self, k: int, temperature: float = 0.0) -> None:
        """Give each product without events the similarity-weighted mean id vector of its `k` nearest products
        with events by text. Without it a cold product lacks the id part that makes up most of a warm product's
        score and ranks below every relevant warm one, however well its words match; with it, it scores like the
        products it reads like. k = 0 clears the imputation.

        `temperature` 0 weighs the neighbours in proportion to their cosine (near-equal weights, since the k
        nearest have similar cosines); > 0 by softmax(cosine / temperature), which lets a wider neighbourhood
        speak while the closest text (often the same product line) keeps most of the weight."""
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
            if temperature > 0:
                weights = torch.softmax(sims / temperature, dim=1)
            else:
                weights = sims.clamp_min(0) + 1e-6
                weights = weights / weights.sum(1, keepdim=True)
            net.imputed[rows] = (weights[..., None] * ids[warm[nearest]]).sum(1)
