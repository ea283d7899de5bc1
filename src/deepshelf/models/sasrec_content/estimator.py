"""The content-aware SASRec estimator: the item table over the whole catalogue, and the steps of `fit` (texts ->
SASRec training -> cold imputation -> calibration on validation)."""

from __future__ import annotations

import numpy as np
import torch

from deepshelf.data.catalog import Catalog
from deepshelf.data.interactions import Interactions
from deepshelf.errors import DeepshelfError
from deepshelf.models.base import Validation
from deepshelf.models.sasrec import SASRec, network_args
from deepshelf.models.sasrec_content import calibration
from deepshelf.models.sasrec_content.coldsearch import ColdSetting
from deepshelf.models.sasrec_content.config import ContentSASRecConfig
from deepshelf.models.sasrec_content.network import COLD_DEFAULTS, ContentSASRecNetwork
from deepshelf.models.sasrec_content.text import ItemText, item_text


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
        self.impute_cold(c.impute_neighbours, c.impute_temperature)
        if validation is not None:
            calibration.calibrate(self, validation)

    def calibrate_similarity(self, validation: Validation, **options) -> tuple[float, float]:
        """See `calibration.calibrate_similarity`."""
        return calibration.calibrate_similarity(self, validation, **options)

    def calibrate_cold(self, validation: Validation, budget: float, **options) -> tuple[int, ColdSetting]:
        """See `calibration.calibrate_cold`."""
        return calibration.calibrate_cold(self, validation, budget, **options)

    def _load_weights(self, path) -> None:
        # a model saved before the cold-scoring buffers existed scored its cold products as their defaults do
        state = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
        for name, value in COLD_DEFAULTS.items():
            state.setdefault(name, torch.tensor(value))
        self.network = self._build(len(self.item_map))
        self.network.load_state_dict(state)
        self.network.eval()

    def impute_cold(self, k: int, temperature: float | None = None) -> None:
        """See `ContentSASRecNetwork.impute_cold` (temperature None: the config's)."""
        self.network.impute_cold(k, self.config.impute_temperature if temperature is None else temperature)
