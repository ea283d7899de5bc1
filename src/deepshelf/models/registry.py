"""Explicit model name -> class table. Imports are lazy so a classic model never pulls in torch."""

from __future__ import annotations

from importlib import import_module

from deepshelf.errors import DeepshelfError

MODELS: dict[str, tuple[str, str]] = {
    "popularity": ("deepshelf.models.popularity", "Popularity"),
    "trending": ("deepshelf.models.popularity", "Trending"),
    "itemknn": ("deepshelf.models.itemknn", "ItemKNN"),
    "ease": ("deepshelf.models.ease", "EASE"),
    "als": ("deepshelf.models.als", "ALS"),
    "sasrec": ("deepshelf.models.sasrec", "SASRec"),
    "content": ("deepshelf.models.content", "ContentModel"),
    "sasrec-content": ("deepshelf.models.sasrec_content", "ContentSASRec"),
    "buyagain": ("deepshelf.models.buyagain", "BuyAgain"),
    "newitems": ("deepshelf.models.newitems", "NewItems"),
    "ranker": ("deepshelf.models.ranker.model", "Ranker"),
}


def model_class(name: str):
    """The class registered as `name`; an unknown name is a user error listing the known ones."""
    try:
        module, attr = MODELS[name]
    except KeyError:
        raise DeepshelfError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}") from None
    return getattr(import_module(module), attr)
