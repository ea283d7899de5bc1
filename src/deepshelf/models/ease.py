"""EASE: embarrassingly shallow autoencoder (Steck, WWW 2019), a closed-form item-item model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from deepshelf.data.interactions import Histories, Interactions
from deepshelf.models.base import ModelConfig, Recommender, load_arrays, save_arrays


class EASEConfig(ModelConfig):
    l2: float = Field(default=500.0, gt=0)  # ridge penalty on the item-item weights


class EASE(Recommender):
    """B = argmin ||X - XB||² + λ||B||² with diag(B) = 0, solved as B = I - P / diag(P), P = (XᵀX + λI)⁻¹."""

    name = "ease"
    Config = EASEConfig
    reason = "also_bought"

    def _fit(self, train: Interactions, catalog, validation) -> None:
        X = train.to_csr(binary=True).astype(np.float64)
        gram = (X.T @ X).toarray()
        gram[np.diag_indices_from(gram)] += self.config.l2
        P = np.linalg.inv(gram)
        B = P / (-np.diag(P))
        B[np.diag_indices_from(B)] = 0.0
        self.item_weights = B.astype(np.float32)  # (n_items, n_items)

    def score(self, histories: Histories) -> np.ndarray:
        X = histories.to_csr(self.n_items)
        X.data[:] = 1.0
        return np.asarray(X @ self.item_weights, dtype=np.float32)

    def _save_weights(self, path: Path) -> None:
        save_arrays(path, {"item_weights": self.item_weights})

    def _load_weights(self, path: Path) -> None:
        self.item_weights = load_arrays(path)["item_weights"]
