"""ContentModel: products understood by their words and pictures (issue 4).

Fit encodes every catalogue product once (text: all-MiniLM-L6-v2; photo: EfficientNet-Lite0 + colour, both
cached by content hash), learns catalogue-tuned heads on the attributes (`content/heads.py`; visual
similarity = summed chances that two photos share each attribute) and the
words-to-pictures bridge (`content/align.py`) on the products that are **not** held out, and builds the
similar-products (`content/similar.py`) and search (`content/search.py`) indexes over all products.
Held-out products (numeric id divisible by `holdout_modulo`) are never seen by a learned head; the content
metrics (attribute P@10 of their neighbours, gallery = all products) are measured on them.

As a recommender, `score()` ranks items by hybrid similarity to the mean of the last `history_len` items of a
history ("more like what you just looked at"). It trains on a catalogue alone (`fit_catalog`, used for the
`fashion` dataset, which has no shopper events) or on events plus a catalogue (`fit`, which adds `behavior`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from pydantic import Field

from deepshelf.content.align import AlignConfig, train_alignment
from deepshelf.content.embed import ContentEmbedder
from deepshelf.content.feedback import FeedbackConfig, SearchFeedback
from deepshelf.content.heads import HeadConfig, encode_labels, train_attribute_heads, unit_rows
from deepshelf.content.quality import attribute_precision, heldout_mask
from deepshelf.content.search import SearchIndex
from deepshelf.content.similar import SimilarIndex, behaviour_vectors
from deepshelf.data.catalog import Catalog
from deepshelf.data.interactions import Histories, Interactions
from deepshelf.errors import DeepshelfError
from deepshelf.models.base import ModelConfig, Recommender, load_arrays, save_arrays

log = logging.getLogger(__name__)


class ContentConfig(ModelConfig):
    text_backend: str = Field(default="torch", pattern="^(onnx|torch)$")
    # the encoder of shoppers' search queries (content/search.py QUERY_BACKEND: why onnx)
    query_backend: str = Field(default="onnx", pattern="^(onnx|torch)$")
    images: bool = True
    # Attributes the photo heads learn; None: the category plus every catalogue column named like a colour.
    attributes: list[str] | None = None
    # Weight of each attribute in the visual similarity (unlisted: 1).
    attribute_weights: dict[str, float] = Field(default_factory=dict)
    raw_visual_weight: float = Field(default=0.1, ge=0)  # raw ImageNet + colour block: orders look-alikes
    text_weight: float = Field(default=1.0, ge=0)  # hybrid = weighted text, visual and behaviour blocks
    visual_weight: float = Field(default=1.0, ge=0)
    behavior_weight: float = Field(default=1.0, ge=0)
    behavior_dim: int = Field(default=64, ge=2)
    holdout_modulo: int = Field(default=5, ge=2)
    history_len: int = Field(default=5, ge=1)
    faiss: str = Field(default="auto", pattern="^(auto|flat|hnsw|none)$")
    heads: HeadConfig = Field(default_factory=HeadConfig)
    align: AlignConfig = Field(default_factory=AlignConfig)
    k: int = Field(default=10, ge=1)  # cut-off of the content metrics
    cache_dir: str | None = None  # embedding cache folder (None: DEEPSHELF_CACHE_DIR or .cache/deepshelf)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)  # search learning from a store's search log


class ContentModel(Recommender):
    name = "content"
    Config = ContentConfig
    reason = "similar"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.similar_index: SimilarIndex | None = None
        self.search_index: SearchIndex | None = None
        self.embedder: ContentEmbedder | None = None  # makes the vectors of products added later
        self.content_metrics: dict = {}
        self.training_log: dict = {}

    # ---- fitting -------------------------------------------------------------------------------------------
    def fit_catalog(self, catalog: Catalog, progress: bool = False,
                    events: Interactions | None = None) -> "ContentModel":
        """Learn from a catalogue: every catalogue product is an item. With shopper `events` (any item space),
        catalogue products with events also get behaviour vectors (mode `behavior`, and in `hybrid`)."""
        if catalog is None or len(catalog) == 0:
            raise DeepshelfError("content model: the catalogue is empty")
        self.item_map = catalog.item_map
        self.item_popularity = np.zeros(len(self.item_map), np.float32)  # no events: no product is more popular
        item_user = None
        if events is not None and len(events):
            import scipy.sparse as sp

            rows = events.item_map.lookup(catalog.item_map.ids)  # catalogue product -> events' item, -1: none
            known = sp.diags((rows >= 0).astype(np.float32))
            item_user = (known @ events.to_csr(binary=True).T.tocsr()[np.maximum(rows, 0)]).tocsr()
        self._build(catalog, item_user, progress)
        return self

    def _fit(self, train: Interactions, catalog: Catalog | None, validation) -> None:
        if catalog is None:
            raise DeepshelfError("content model needs a catalogue (titles and/or images); pass --catalog")
        self._build(catalog, train.to_csr(binary=True).T.tocsr(), progress=False)

    def _attributes(self, table) -> list[str]:
        cfg = self.config
        if cfg.attributes is not None:
            missing = [a for a in cfg.attributes if a not in table.columns]
            if missing:
                raise DeepshelfError(f"content model: attribute(s) {missing} not in the catalogue "
                                     f"(columns: {', '.join(table.columns)})")
            return list(cfg.attributes)
        colours = [c for c in table.columns if c not in Catalog.STANDARD and ("colour" in c.lower()
                                                                            or "color" in c.lower())]
        return [c for c in ["category", *colours] if table[c].n_unique() >= 2]

    @staticmethod
    def _search_attributes(table, take) -> dict[str, np.ndarray]:
        """The catalogue columns search filters by: type (the category), colour and gender / age group where the
        catalogue has such columns (the others are read from product texts, `content.query.lexicon`)."""
        def named(*words):
            return next((c for c in table.columns if c not in Catalog.STANDARD
                         and any(w in c.lower() for w in words)), None)

        columns = {"type": "category", "colour": named("colour", "color"), "gender": named("gender")}
        return {a: take(c) for a, c in columns.items() if c is not None and c in table.columns}

    def _build(self, catalog: Catalog, item_user, progress: bool) -> None:
        from deepshelf.encoders.image import ImageEncoder
        from deepshelf.encoders.text import TextEncoder

        cfg = self.config
        ids = self.item_map.ids.astype(str)
        rows = catalog.rows_for(self.item_map)
        table = catalog.table
        take = lambda col: np.where(rows >= 0, table[col].to_numpy()[np.maximum(rows, 0)], "").astype(str)
        texts = catalog.texts_for(self.item_map)
        titles = take("title").tolist()
        held = heldout_mask(ids, cfg.holdout_modulo)
        train_mask = ~held
        attrs = self._attributes(table)
        raw_labels = {a: take(a) for a in attrs}
        labels = {a: encode_labels(v, train_mask)[0] for a, v in raw_labels.items()}
        log.info("content model: %d items (%d held out), attributes %s", len(ids), held.sum(), attrs)

        text_enc = TextEncoder(backend=cfg.text_backend, cache_dir=cfg.cache_dir)
        text_vectors = text_enc.encode(texts, progress=progress)  # (n, 384): product text
        title_vectors = text_enc.encode(titles, progress=progress)  # (n, 384): names, the queries' style
        has_text = np.array([bool(t.strip()) for t in texts])
        vectors = {"text": text_vectors}
        valid = {"text": has_text}
        photo_vectors, photo_valid, text_tower = np.zeros((len(ids), 1), np.float32), np.zeros(len(ids), bool), None
        images = take("image")
        if cfg.images and (images != "").any():
            enc = ImageEncoder(cache_dir=cfg.cache_dir).encode(images.tolist(), progress=progress,
                                                              names=[f"item {i}" for i in ids])
            photo_valid = enc.ok
            raw = enc.combined()  # (n, 1280 + colour)
            learn = train_mask & photo_valid
            known = {a: c for a, c in labels.items() if (c[learn] >= 0).any()}  # attributes a head can learn
            heads = train_attribute_heads(raw, known, learn, cfg.heads) if known else {}
            embedder = ContentEmbedder(heads, cfg.attribute_weights, cfg.raw_visual_weight, [])
            visual, image_input = embedder.visual(raw)  # heads' class probabilities + raw block; tower input
            visual[~photo_valid] = 0.0
            vectors["visual"], valid["visual"] = visual, photo_valid
            # The bridge learns from the titles (what shoppers type) and the photo's head probabilities + raw
            # features, so a query's words meet the article type and colour a photo shows.
            pair_ids = np.unique(np.char.lower(np.array(titles, dtype=str)), return_inverse=True)[1]
            text_tower, embedder.image_tower = train_alignment(title_vectors, image_input, learn & has_text, labels,
                                                               pair_ids, cfg.align)
            photo_vectors = embedder.photo(image_input)
            photo_vectors[~photo_valid] = 0.0
        else:
            embedder = ContentEmbedder({}, {}, cfg.raw_visual_weight, [])
        if item_user is not None:
            beh, beh_valid = behaviour_vectors(item_user, cfg.behavior_dim, cfg.seed)
            vectors["behavior"], valid["behavior"] = beh, beh_valid
        embedder.hybrid = [(m, w) for m, w in (("text", cfg.text_weight), ("visual", cfg.visual_weight),
                                                ("behavior", cfg.behavior_weight)) if m in vectors]
        self.embedder = embedder
        vectors["hybrid"] = embedder.hybrid_vectors(vectors)
        valid["hybrid"] = np.logical_or.reduce([valid[m] for m in valid])
        self.similar_index = SimilarIndex(ids, vectors, valid)
        if cfg.faiss != "none":
            self.similar_index.build_faiss(cfg.faiss)
        self.search_index = SearchIndex(ids, texts, text_vectors, photo_vectors, photo_valid, text_tower,
                                        cfg.text_backend, query_backend=cfg.query_backend,
                                        encoder=text_enc if cfg.query_backend == cfg.text_backend else None,
                                        attributes=self._search_attributes(table, take))
        self.content_metrics = self._evaluate(held, raw_labels, title_vectors)

    # ---- content metrics -----------------------------------------------------------------------------------
    def _evaluate(self, held: np.ndarray, raw_labels: dict[str, np.ndarray], title_vectors: np.ndarray) -> dict:
        """Attribute P@k of held-out products' neighbours per mode, plus words -> pictures (query = the name)."""
        cfg = self.config
        eval_attrs = {a: v for a, v in raw_labels.items() if a == "category" or "colo" in a.lower()}
        if not eval_attrs:
            return {}
        out = {"k": cfg.k, "heldout_items": int(held.sum()), "attributes": list(eval_attrs)}
        index = self.similar_index
        for mode in index.modes:
            q = np.flatnonzero(held & index.valid[mode])
            if len(q):
                out[mode] = attribute_precision(index.vectors[mode][q], q, index.vectors[mode], eval_attrs, cfg.k,
                                                gallery_ok=index.valid[mode])
        s = self.search_index
        if s.text_tower is not None:
            q = np.flatnonzero(held & s.photo_valid)
            out["words_to_pictures"] = attribute_precision(s.text_tower(title_vectors[q]), q, s.photo_vectors,
                                                           eval_attrs, cfg.k, gallery_ok=s.photo_valid)
        for name, value in out.items():
            if isinstance(value, dict):
                log.info("content P@%d %s: %s", cfg.k, name, {a: round(v, 4) for a, v in value.items()})
        return out

    # ---- recommending --------------------------------------------------------------------------------------
    def score(self, histories: Histories) -> np.ndarray:
        """Hybrid cosine of every item to the mean vector of each history's last `history_len` items."""
        if self.similar_index is None:
            raise RuntimeError("content model is not fitted")
        vectors = self.similar_index.vectors["hybrid"]
        lengths = histories.lengths
        take = np.minimum(lengths, self.config.history_len)
        # Position of each event from the end of its history, to keep only the last `take` events.
        from_end = np.repeat(histories.indptr[1:], lengths) - np.arange(len(histories.items)) - 1
        keep = from_end < np.repeat(take, lengths)
        rows = np.repeat(np.arange(len(histories)), lengths)[keep]
        profile = np.zeros((len(histories), vectors.shape[1]), np.float32)
        np.add.at(profile, rows, vectors[histories.items[keep]])
        return (unit_rows(profile) @ vectors.T).astype(np.float32)

    # ---- persistence ---------------------------------------------------------------------------------------
    def learn_searches(self, log) -> dict | None:
        """Tune the search index with a shop's search log (content/feedback.py: query, item, kind rows); what was
        learnt (counts), or None when the log teaches nothing (the search stays as it was)."""
        s = self.search_index
        s.feedback = SearchFeedback.fit(log, s.item_ids, s._rows.attributes, self.config.feedback)
        return None if s.feedback is None else s.feedback.info

    def save_indexes(self, folder: Path) -> None:
        """The content indexes a server loads (similar, search, and the embedder for products added later)."""
        self.similar_index.save(folder)
        self.search_index.save(folder)
        self.embedder.save(folder)

    def _save_weights(self, path: Path) -> None:
        save_arrays(path, {"content_metrics": np.array(json.dumps(self.content_metrics))})
        self.save_indexes(path / "content")

    def _load_weights(self, path: Path) -> None:
        self.content_metrics = json.loads(str(load_arrays(path)["content_metrics"]))
        self.similar_index = SimilarIndex.load(path / "content")
        self.search_index = SearchIndex.load(path / "content")
        self.embedder = ContentEmbedder.load(path / "content")
        if list(self.similar_index.item_ids) != list(self.item_map.ids.astype(str)):
            raise DeepshelfError(f"{path}: content index does not match the model's items")
