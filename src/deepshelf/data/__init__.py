"""Data layer: schema, id maps, validated interactions, catalogue, loaders, built-in datasets and splits."""

from deepshelf.data.catalog import Catalog
from deepshelf.data.datasets import Dataset, load_dataset
from deepshelf.data.idmap import IdMap
from deepshelf.data.interactions import Histories, Interactions
from deepshelf.data.splits import EvalSet, Split, leave_one_out, make_split, temporal

__all__ = ["Catalog", "Dataset", "EvalSet", "Histories", "IdMap", "Interactions", "Split", "leave_one_out",
           "load_dataset", "make_split", "temporal"]
