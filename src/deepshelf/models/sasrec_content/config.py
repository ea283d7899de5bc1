"""The content-aware SASRec's typed config: SASRec's, plus the text part and the cold products' settings.

Its own module, below estimator.py and calibration.py: the calibration reads it and the estimator imports the
calibration.
"""

from __future__ import annotations

from pydantic import Field

from deepshelf.models.sasrec.config import SASRecConfig


class ContentSASRecConfig(SASRecConfig):
    content_dim: int = Field(default=384, gt=0)  # the text encoder's width
    id_dropout: float = Field(default=0.2, ge=0.0, lt=1.0)  # share of items trained as if cold, per step
    similarity_dim: int = Field(default=64, ge=0)  # last-item text similarity term; 0 = off
    # cold products' id vector from this many text neighbours; `calibrate_cold` replaces it with its choice
    impute_neighbours: int = Field(default=10, ge=0)
    # their weights: 0 in proportion to text cosine, > 0 softmax(cosine / temperature); also chosen by the calibration
    impute_temperature: float = Field(default=0.0, ge=0.0)
    # Share of validation NDCG@10 the model may give up to rank products without events higher (new-product
    # exposure); 0 keeps the trained scale and `impute_neighbours`. See `calibrate_cold`.
    cold_exposure_budget: float = Field(default=0.05, ge=0.0, lt=1.0)
    text_backend: str = Field(default="torch", pattern="^(onnx|torch)$")
    cache_dir: str | None = None
