"""Content-aware SASRec: an item is its id embedding plus a projection of its text vector (issue 4, part 6).

`item = warm(i) * id_embedding(i) + W @ text_vector(i)`: the id part carries what events taught about the item,
the content part what its words say. A product with no events at all (added to the catalogue after training)
has no id part, but its content part puts it where similar products sit, so it is recommendable at once.
Training hides the id part of a random share of items in every step (`id_dropout`, as in DropoutNet, Volkovs
et al. 2017), so the content projection must carry real signal on its own instead of idling behind the ids.

A 64-d projection keeps what a text says about taste, not which product line it names, and next items in a shop
are often the same line or brand as the last one. So each logit also gets a learned multiple of the text
similarity between the newest history item and the candidate, in the top `similarity_dim` singular directions
of the catalogue's text vectors (dot products there approximate the full 384-d cosine). It is appended to the
output vectors: `[h, w * s(last)] . [item, s(item)] = h . item + w * s(last) . s(item)`, so training, the
full-softmax loss and ANN serving all stay one dot product.

The item table covers the whole catalogue: the training events' items first (same indices as the events), then
every catalogue product without events ("cold"), so `score()` ranks cold products like any other. Everything
else (sequence encoder, loss, training loop, persistence) is `deepshelf.models.sasrec`'s.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from deepshelf.data.catalog import Catalog
from deepshelf.data.interactions import Interactions
from deepshelf.errors import DeepshelfError
from deepshelf.models.base import Validation
from deepshelf.models.sasrec import SASRec, SASRecConfig, SASRecNetwork

log = logging.getLogger(__name__)


class ContentSASRecConfig(SASRecConfig):
    content_dim: int = Field(default=384, gt=0)  # the text encoder's width
    id_dropout: float = Field(default=0.2, ge=0.0, lt=1.0)  # share of items trained as if cold, per step
    similarity_dim: int = Field(default=64, ge=0)  # last-item text similarity term; 0 = off
    # cold products' id vector from this many text neighbours; `calibrate_cold` replaces it with its choice
    impute_neighbours: int = Field(default=10, ge=0)
    # Share of validation NDCG@10 the model may give up to rank products without events higher (new-product
    # exposure); 0 keeps the trained scale and `impute_neighbours`. See `calibrate_cold`.
    cold_exposure_budget: float = Field(default=0.05, ge=0.0, lt=1.0)
    text_backend: str = Field(default="torch", pattern="^(onnx|torch)$")
    cache_dir: str | None = None


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


class ContentSASRec(SASRec):
    """SASRec over id + text item vectors; recommends catalogue products that have no events yet."""

    name = "sasrec-content"
    Config = ContentSASRecConfig
    reason = "sequence"
    cold_factor = 1.0  # set by calibrate_cold (for reports; the scale itself is in the network's weights)

    def _build(self, n_items: int) -> ContentSASRecNetwork:
        from deepshelf.data.schema import EVENT_TYPE_NAMES

        c = self.config
        n_items = len(self.item_map)  # the whole catalogue, not only the items with events
        n_types = len(EVENT_TYPE_NAMES) if c.use_event_types else 0
        net = ContentSASRecNetwork(n_items, c.content_dim, c.id_dropout, c.similarity_dim, max_len=c.max_len,
                                   dim=c.dim, layers=c.layers, heads=c.heads, dropout=c.dropout, n_types=n_types,
                                   ffn_mult=c.ffn_mult, init_std=c.init_std, norm=c.norm,
                                   from_oldest=c.positions == "oldest", scale_items=c.scale_items,
                                   attn_dropout=c.attn_dropout)
        if getattr(self, "_content", None) is not None:  # fitting; a loaded model gets them from its state_dict
            with torch.no_grad():
                net.content.copy_(torch.from_numpy(self._content))
                net.warm.copy_(torch.from_numpy(self._warm))
                net.similarity.copy_(torch.from_numpy(self._similarity))
        return net

    def _fit(self, train: Interactions, catalog: Catalog | None, validation: Validation | None) -> None:
        if catalog is None:
            raise DeepshelfError("sasrec-content needs a catalogue with product texts (pass --catalog)")
        from deepshelf.encoders.text import TextEncoder

        # Items with events keep their indices; catalogue products without events are appended as cold items.
        self.item_map = train.item_map.extend(catalog.item_map.ids)
        n_warm = train.n_items
        self.item_popularity = np.concatenate(
            [self.item_popularity, np.zeros(len(self.item_map) - n_warm, np.float32)])
        rows = catalog.rows_for(self.item_map)
        texts = np.array(catalog.texts(), dtype=object)
        item_texts = np.where(rows >= 0, texts[np.maximum(rows, 0)], "").astype(str).tolist()
        vectors = TextEncoder(backend=self.config.text_backend, cache_dir=self.config.cache_dir).encode(item_texts)
        warm = np.zeros(len(self.item_map) + 1, np.float32)
        warm[1:n_warm + 1] = train.item_popularity() > 0
        log.info("sasrec-content: %d items with events, %d cold catalogue products", int(warm.sum()),
                 len(self.item_map) - int(warm.sum()))
        self._content = np.concatenate([np.zeros((1, vectors.shape[1]), np.float32), vectors])
        self._warm = warm
        # The top right singular vectors of the (uncentred) text matrix: the rank-k basis whose dot products best
        # approximate the texts' cosines.
        basis = np.zeros((vectors.shape[1], self.config.similarity_dim), np.float32)  # (384, k)
        if self.config.similarity_dim:
            top = np.linalg.svd(vectors, full_matrices=False)[2][: self.config.similarity_dim].T  # fewer on tiny data
            basis[:, : top.shape[1]] = top
        self._similarity = (self._content @ basis).astype(np.float32)  # padding row stays 0
        super()._fit(train, catalog, validation)
        self.impute_cold(self.config.impute_neighbours)
        if validation is not None and self.network.log_similarity_weight is not None:
            _, ndcg = self.calibrate_similarity(validation)
            if self.config.cold_exposure_budget > 0 and bool((self.network.warm[1:] == 0).any()):
                self.calibrate_cold(validation, self.config.cold_exposure_budget, reference=ndcg)

    @torch.no_grad()
    def calibrate_similarity(self, validation: Validation, factors=(1.0, 2.0, 4.0, 8.0)) -> tuple[float, float]:
        """Scale the text-similarity weight by the factor with the best validation NDCG@10; returns (factor,
        validation NDCG@10 with it).

        Trained under dropout, the weight settles where noisy training outputs want it; the clean outputs at
        serving time may rank better with more of it. One scalar, chosen
        on validation, never on test."""
        log_weight = self.network.log_similarity_weight
        base = float(log_weight)
        scores = {}
        for f in factors:
            log_weight.fill_(base + math.log(f))
            scores[f] = validation(self)
        best = max(scores, key=scores.get)
        log_weight.fill_(base + math.log(best))
        log.info("sasrec-content: text similarity weight %.2f -> %.2f, cold items x%.2f (validation NDCG@10 %s)",
                 math.exp(base), math.exp(base) * best, float(self.network.log_cold_similarity_scale.exp()),
                 {f: round(v, 4) for f, v in scores.items()})
        return best, scores[best]

    @torch.no_grad()
    def calibrate_cold(self, validation: Validation, budget: float, neighbours=(1, 3, 10), factors=(1.0, 1.5, 2.0, 2.5, 3.0, 4.0),
                       reference: float | None = None, baseline: float | None = None, pseudo_share: float = 0.1,
                       seed: int = 0) -> tuple[int, float]:
        """Choose how products without events are scored: from how many text neighbours their id vector is
        borrowed (`impute_cold`) and by what factor their text similarity is raised. Returns (neighbours, factor).

        Nothing ranks a product without events from evidence about itself, and a ranking tuned for accuracy on
        past events alone keeps such products out of sight, so they never earn the events that would teach the
        model about them. The budget makes the trade explicit: validation NDCG@10 may fall at most `budget` (a
        share) below `baseline`: by default the model's own value as trained, given an id-only model's
        validation NDCG@10, what the shop would have without texts. `reference` is the model's own value when
        the caller has just measured it (at its current neighbour count and factor x1, so it is not measured
        again).

        Validation has no targets without events, so it can count what exposure costs but not what it gains.
        The gain is measured on "pseudo-cold" products: a random `pseudo_share` of the products with events is
        scored as if it had none (id part dropped and borrowed from text neighbours, raised text similarity), on
        the validation cases with one of them among their targets (the only target under leave-one-out). Among
        the settings within budget (factors are tried in increasing order and each neighbour count stops at its
        first one over budget), the one that ranks those targets best (NDCG@10) wins; ties go to the smaller
        factor. Without pseudo-cold cases (a tiny catalogue), or with no setting within budget, the setting with
        the best validation NDCG@10 wins."""
        net = self.network
        log_scale = net.log_cold_similarity_scale
        base = float(log_scale)
        trained_k = self.config.impute_neighbours
        if reference is None and baseline is None:
            reference = validation(self)
        floor = (1 - budget) * (reference if baseline is None else baseline)
        warm = net.warm.clone()
        warm_items = np.flatnonzero(warm[1:].cpu().numpy() > 0)
        rng = np.random.default_rng(seed)
        pseudo = rng.choice(warm_items, size=int(round(pseudo_share * len(warm_items))), replace=False)
        valid = validation.evalset
        case_of_target = np.repeat(np.arange(len(valid.targets)), valid.targets.lengths)
        pseudo_cases = valid.select(np.unique(case_of_target[np.isin(valid.targets.items, pseudo)]))

        def ndcg(evalset, factor: float) -> float:
            log_scale.fill_(base + math.log(factor))
            return validation(self, evalset)

        costs: dict[tuple[int, float], float] = {}
        gains: dict[tuple[int, float], float] = {}
        try:
            for k in neighbours:
                self.impute_cold(k)
                for f in factors:
                    measured = reference is not None and (k, f) == (trained_k, 1.0)
                    costs[k, f] = reference if measured else ndcg(valid, f)
                    if costs[k, f] < floor:
                        break
                within = [f for f in factors if costs.get((k, f), -1.0) >= floor]
                if within and len(pseudo_cases):
                    net.warm[1:][torch.from_numpy(pseudo)] = 0  # the pseudo-cold products lose their events
                    self.impute_cold(k)
                    for f in within:
                        gains[k, f] = ndcg(pseudo_cases, f)
                    net.warm.copy_(warm)
        except BaseException:  # interrupted: leave the model as it was, not half-way through the search
            net.warm.copy_(warm)
            self.impute_cold(trained_k)
            log_scale.fill_(base)
            raise
        if gains:
            k, f = max(gains, key=lambda kf: (gains[kf], -kf[1]))
        elif costs:  # nothing within budget: the setting that costs least
            k, f = max(costs, key=costs.get)
        else:
            k, f = trained_k, 1.0
        self.impute_cold(k)
        log_scale.fill_(base + math.log(f))
        self.cold_factor = f
        self.config = self.config.model_copy(update={"impute_neighbours": k})
        log.info("sasrec-content: cold products borrow %d text neighbours' id vectors, text similarity x%.2f; "
                 "validation NDCG@10 >= %.4f (%.0f%% budget) %s; pseudo-cold NDCG@10 (%d cases) %s", k, f, floor,
                 budget * 100, {kf: round(v, 4) for kf, v in costs.items()}, len(pseudo_cases),
                 {kf: round(v, 4) for kf, v in gains.items()})
        return k, f

    @torch.no_grad()
    def impute_cold(self, k: int) -> None:
        """Give each product without events the similarity-weighted mean id vector of its `k` nearest products
        with events by text. Without it a cold product lacks the id part that makes up most of a warm product's
        score and ranks below every relevant warm one, however well its words match; with it, it scores like the
        products it reads like. k = 0 clears the imputation."""
        net = self.network
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
