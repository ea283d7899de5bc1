"""New products: catalogue products with no sales yet, or only recent ones, matched to a shopper by their text.

A product listed today has no events, so no collaborative model can propose it; its catalogue text can. This
model scores the *new* products (no event before the end of training, or a first event at most `max_age_days`
before it) by the cosine of their text to the shopper's profile, the summed text vectors of the last
`history_len` items of the history (each once), and every other product below all of them. As a generator of the
learned ranker (`models/ranker`) it brings new products into the candidates and into the ranker's exploration
places; its reason is `new`.

Text is read two ways: `words` (TF-IDF over the catalogue's own words: a product line's shared words, "CHRISTMAS
LIGHTS", match exactly) and `meaning` (the sentence encoder, `encoders/text.py`); `both` adds the meaning cosine,
times `meaning_weight`, to the words one. On Online Retail's validation period words plus a quarter of the meaning
matched a shopper's next new product best (docs/benchmarks.md, "New products").

The catalogue is read as of the fit: a product is known from its catalogue row whether or not it has sold, as a
shop lists products before they sell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from deepshelf.data.catalog import Catalog
from deepshelf.data.interactions import Histories, Interactions
from deepshelf.encoders.text import TEXT_DIM, item_text_vectors
from deepshelf.models.base import ModelConfig, Recommender, load_arrays, save_arrays

DAY = 86400.0
OLD = -2.0  # every product that is not new: below any cosine sum


class NewItemsConfig(ModelConfig):
    # a product whose first event is at most this many days before the end of training still counts as new
    max_age_days: float = Field(default=0.0, ge=0)
    history_len: int = Field(default=200, ge=1)  # the shopper's last items the profile sums (each once)
    # "both" with meaning at 0.25 matched the next new product best on Online Retail's validation period
    text: Literal["words", "meaning", "both"] = "both"
    meaning_weight: float = Field(default=0.25, ge=0)  # text = "both": the meaning cosine's weight
    cache_dir: str | None = None  # sentence encoder's embedding cache (None: its default)


def new_item_mask(train: Interactions, max_age_days: float) -> np.ndarray:
    """bool [n_items]: no event in `train`, or a first event at most `max_age_days` before its newest event."""
    if not len(train):
        return np.ones(train.n_items, bool)
    first = np.full(train.n_items, np.inf)
    np.minimum.at(first, train.item, train.timestamp.astype(np.float64))
    return first >= float(train.timestamp.max()) - max_age_days * DAY


class NewItems(Recommender):
    """New products by the text of the shopper's items (a candidate generator for new products)."""

    name = "newitems"
    Config = NewItemsConfig
    reason = "new"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.is_new: np.ndarray | None = None  # bool [n_items]
        self.words: sp.csr_matrix | None = None  # [n_items, vocabulary] unit TF-IDF rows (text: words, both)
        self.meaning: np.ndarray | None = None  # float32 [n_items, d] unit rows, zero: no text (meaning, both)

    def _fit(self, train: Interactions, catalog: Catalog | None, validation) -> None:
        cfg = self.config
        self.is_new = new_item_mask(train, cfg.max_age_days)
        texts = catalog.texts_for(self.item_map) if catalog is not None else [""] * self.n_items
        self.words = sp.csr_matrix((self.n_items, 1), dtype=np.float32)
        self.meaning = np.zeros((self.n_items, 1), np.float32)
        has_text = any(t.strip() for t in texts)
        if cfg.text in ("words", "both") and has_text:
            self.words = TfidfVectorizer(sublinear_tf=True, dtype=np.float32).fit_transform(texts).tocsr()
        if cfg.text in ("meaning", "both"):
            self.meaning = (item_text_vectors(texts, cfg.cache_dir) if has_text
                            else np.zeros((self.n_items, TEXT_DIM), np.float32))

    def score(self, histories: Histories) -> np.ndarray:
        """float32 [B, n_items]: new products by the cosine of their text to the history's summed text (0 for an
        empty history or one without text), every other product `OLD`."""
        cfg = self.config
        own = histories.last_items(self.n_items, cfg.history_len)
        new = np.flatnonzero(self.is_new)
        match = np.zeros((len(histories), len(new)), np.float32)
        if self.words.nnz:
            match += (normalize(own @ self.words) @ self.words[new].T).toarray()
        if self.meaning.shape[1] > 1:
            weight = cfg.meaning_weight if cfg.text == "both" else 1.0
            profile = np.asarray(own @ self.meaning)
            profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-9)
            match += weight * (profile @ self.meaning[new].T)
        out = np.full((len(histories), self.n_items), OLD, np.float32)
        out[:, new] = match
        return out

    def new_items(self) -> np.ndarray:
        return self.is_new

    def _save_weights(self, path: Path) -> None:
        w = self.words
        save_arrays(path, {"is_new": self.is_new, "meaning": self.meaning, "words_data": w.data,
                           "words_indices": w.indices, "words_indptr": w.indptr,
                           "words_shape": np.array(w.shape, np.int64)})

    def _load_weights(self, path: Path) -> None:
        s = load_arrays(path)
        self.is_new, self.meaning = s["is_new"].astype(bool), s["meaning"]
        self.words = sp.csr_matrix((s["words_data"], s["words_indices"], s["words_indptr"]),
                                   shape=tuple(s["words_shape"]))
