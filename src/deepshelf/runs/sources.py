"""Where a run's training data comes from: an event store URL, a built-in dataset or a file.

Its own module because training (pipeline.py, retrain.py), content indexing (content.py, which pipeline.py
imports) and the CLI all read the data a config names, and content.py cannot import the pipeline above it.
"""

from __future__ import annotations

from deepshelf.data.datasets import Dataset, dataset_from_frames, load_dataset
from deepshelf.data.loaders import read_catalog
from deepshelf.storage import is_store_url, read_search_log, read_training_frames, redact_url


def load_source(name_or_url: str, catalog: str | None = None) -> Dataset:
    """The training data a config names: an event store URL (`deepshelf train --database`), else a built-in dataset
    or a file path; `catalog` (a file) replaces the source's own catalogue. A store's dataset carries its search log
    (`Dataset.search_log`)."""
    if not is_store_url(name_or_url):
        return load_dataset(name_or_url, catalog=catalog)
    ds = dataset_from_frames(redact_url(name_or_url), *read_training_frames(name_or_url))
    ds.search_log = read_search_log(name_or_url)
    if catalog is not None:
        ds.catalog = read_catalog(catalog)
    return ds.listing_catalog()
