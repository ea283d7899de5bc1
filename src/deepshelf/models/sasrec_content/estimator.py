"""The content-aware SASRec estimator: its config, the item table over the whole catalogue, and the steps of
`fit` (texts -> SASRec training -> cold imputation -> calibration on validation)."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from deepshelf.data.catalog import Catalog
from deepshelf.data.interactions import Interactions
from deepshelf.errors import DeepshelfError
from deepshelf.models.base import Validation
from deepshelf.models.sasrec import SASRec, SASRecConfig, network_args
from deepshelf.models.sasrec_content import calibration
from deepshelf.models.sasrec_content.network import ContentSASRecNetwork
from deepshelf.models.sasrec_content.text import ItemText, item_text


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


class ContentSASRec(SASRec):
    """SASRec over id + text item vectors; recommends catalogue products that have no events yet."""

    name = "sasrec-content"
    Config = ContentSASRecConfig
    reason = "sequence"
    cold_factor = 1.0  # set by calibrate_cold (for reports; the scale itself is in the network's weights)

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self._text: ItemText | None = None  # while fitting; a loaded model has it in its state_dict

    def _build(self, n_items: int) -> ContentSASRecNetwork:
        c = self.config
        # the whole catalogue, not only the items with events
        net = ContentSASRecNetwork(len(self.item_map), c.content_dim, c.id_dropout, c.similarity_dim,
                                   **network_args(c))
        if self._text is not None:
            with torch.no_grad():
                net.content.copy_(torch.from_numpy(self._text.content))
                net.warm.copy_(torch.from_numpy(self._text.warm))
                net.similarity.copy_(torch.from_numpy(self._text.similarity))
        return net

    def _fit(self, train: Interactions, catalog: Catalog | None, validation: Validation | None) -> None:
        if catalog is None:
            raise DeepshelfError("sasrec-content needs a catalogue with product texts (pass --catalog)")
        c = self.config
        # Items with events keep their indices; catalogue products without events are appended as cold items.
        self.item_map = train.item_map.extend(catalog.item_map.ids)
        self.item_popularity = np.concatenate(
            [self.item_popularity, np.zeros(len(self.item_map) - train.n_items, np.float32)])
        self._text = item_text(train, catalog, self.item_map, c.similarity_dim, c.text_backend, c.cache_dir)
        try:
            super()._fit(train, catalog, validation)
        finally:
            self._text = None  # in the network's buffers now
        self.impute_cold(c.impute_neighbours)
        if validation is not None:
            calibration.calibrate(self, validation)

    def calibrate_similarity(self, validation: Validation, **options) -> tuple[float, float]:
        """See `calibration.calibrate_similarity`."""
        return calibration.calibrate_similarity(self, validation, **options)

    def calibrate_cold(self, validation: Validation, budget: float, **options) -> tuple[int, float]:
        """See `calibration.calibrate_cold`."""
        return calibration.calibrate_cold(self, validation, budget, **options)

    def impute_cold(self, k: int) -> None:
        """See `ContentSASRecNetwork.impute_cold`."""
        self.network.impute_cold(k)
