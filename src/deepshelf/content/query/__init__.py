"""Query understanding for product search: spelling against the catalogue's words, attributes and price bounds
parsed into filters, shoppers' words mapped to the catalogue's, relaxation when nothing matches."""

from deepshelf.content.query.lexicon import ATTRIBUTES, Lexicon
from deepshelf.content.query.understand import QueryUnderstanding, Understood

__all__ = ["ATTRIBUTES", "Lexicon", "QueryUnderstanding", "Understood"]
