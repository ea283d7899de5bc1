"""What the content-aware SASRec knows of each item's words, computed once before training: the text vectors,
which items have events ("warm"), and the texts in their top singular directions (the similarity term)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from deepshelf.data.catalog import Catalog
from deepshelf.data.idmap import IdMap
from deepshelf.data.interactions import Interactions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemText:
    """Network buffers, one row per item index + 1 (row 0: padding, all zero)."""

    content: np.ndarray  # float32 (n_items + 1, content_dim): text vectors
    warm: np.ndarray  # float32 (n_items + 1,): 1 for items seen in training events
    similarity: np.ndarray  # float32 (n_items + 1, similarity_dim): text vectors in the top singular directions


def encode_texts(catalog: Catalog, item_map: IdMap, backend: str, cache_dir: str | None) -> np.ndarray:
    """float32 (n_items, content_dim): each item's catalogue text encoded ("" for an item without a row)."""
    from deepshelf.encoders.text import TextEncoder

    return TextEncoder(backend=backend, cache_dir=cache_dir).encode(catalog.texts_for(item_map))


def similarity_basis(vectors: np.ndarray, k: int) -> np.ndarray:
    """(content_dim, k): the top right singular vectors of the (uncentred) text matrix, the rank-k basis whose
    dot products best approximate the texts' cosines; zero columns where the data has fewer (a tiny catalogue)."""
    basis = np.zeros((vectors.shape[1], k), np.float32)
    if k:
        top = np.linalg.svd(vectors, full_matrices=False)[2][:k].T
        basis[:, : top.shape[1]] = top
    return basis


def item_text(train: Interactions, catalog: Catalog, item_map: IdMap, similarity_dim: int, backend: str,
              cache_dir: str | None) -> ItemText:
    """The buffers for `item_map`: `train`'s items first (same indices), then the catalogue's cold products."""
    vectors = encode_texts(catalog, item_map, backend, cache_dir)
    warm = np.zeros(len(item_map) + 1, np.float32)
    warm[1 : train.n_items + 1] = train.item_popularity() > 0
    log.info("sasrec-content: %d items with events, %d cold catalogue products", int(warm.sum()),
             len(item_map) - int(warm.sum()))
    content = np.concatenate([np.zeros((1, vectors.shape[1]), np.float32), vectors])
    similarity = (content @ similarity_basis(vectors, similarity_dim)).astype(np.float32)  # padding row stays 0
    return ItemText(content, warm, similarity)
