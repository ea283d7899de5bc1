"""Optional content features (text / visual similarity, semantic search) from a run's content indexes.

`deepshelf.content` builds them (`deepshelf train` into RUN/content, `deepshelf attach-content`, or the content
model's own run). This adapter only finds and calls them, so the server runs without them: `load()` returns None
and the service answers mode=text|visual|hybrid with a clear 409 "not available for this run" instead of an error.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

from deepshelf.runs.artifacts import content_dir

log = logging.getLogger(__name__)


def unavailable(content: "ContentFeatures | None", mode: str) -> str:
    """Why similar-by-`mode` cannot be answered by a run with these content features (None: none at all): a run
    with text vectors but no photo vectors is told so, not that it has no content vectors."""
    if content is None:
        return (f"mode {mode!r} is not available for this run: it has no content vectors (train the content model "
                "into the run's content/ folder); use mode=behavior")
    have = ", ".join(content.modes) or "none"
    if mode in ("visual", "hybrid") and "text" in content.modes and "visual" not in content.modes:
        return (f"mode {mode!r} is not available for this run: it has text vectors but no photo vectors (its "
                "catalogue had no product images when its content indexes were built; give products image_url "
                f"or upload images, then rebuild them with deepshelf attach-content); modes it has: {have}")
    return f"mode {mode!r} is not available for this run; modes it has: {have}, and behavior"


class ContentFeatures:
    """A run's `SimilarIndex` (and `SearchIndex` when present), answering in original item ids.

    Products upserted over HTTP are encoded on a worker thread, off the request path: the upsert answers after
    the commit and the product's vectors follow a moment later: its text vector, and with the run's `embedder`
    (`content.embed`) and a photo (an uploaded image in `store`, else an `image_url` naming a file in
    `image_dir`) its visual, search-photo and hybrid vectors. Upserts that arrive while the worker is busy wait
    together and are added in one pass (each product once, its latest upsert): the search index rebuilds its word
    index over the whole catalogue on every pass (seconds at a million products), so a burst of upserts costs one
    rebuild after the running one, not one each. `close()` ends that thread (after the work already handed to it);
    the service calls it when the run is swapped out or the server stops.
    """

    def __init__(self, similar_index, search_index, embedder=None, store=None, image_dir: Path | None = None):
        self.similar_index = similar_index
        self.search_index = search_index
        self.embedder = embedder
        self._store = store
        self._image_dir = Path(image_dir).resolve() if image_dir is not None else None
        self._encoder = None
        self._image_encoder = None
        self._lock = threading.Lock()  # submit vs close, and the waiting upserts
        self._closed = False
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepshelf-content")
        self._waiting: dict = {}  # item_id -> Item: upserts not yet taken by a pass (the latest of each product)
        self._next: Future | None = None  # the pass that will take them (queued behind the running one)

    @property
    def has_text(self) -> bool:
        return "text" in self.similar_index.modes

    def text_vectors(self, item_ids) -> tuple[np.ndarray, np.ndarray]:
        """Unit text vectors of `item_ids` [n, d] and whether each has one (bool [n])."""
        return self.similar_index.vectors_of(item_ids, "text")

    @property
    def sees_photos(self) -> bool:
        """Whether upserted products' photos can be embedded (the run learnt its visual mode's parts)."""
        return self.embedder is not None and "visual" in self.similar_index.modes

    def add_items(self, items) -> Future | None:
        """Give upserted products every vector the run has (same encoders and learnt parts as the run's), so
        they are similar to the catalogue by text and picture both ways, found by search and recommended by
        content before any retraining. None when there is nothing to do or the features are closed (the run was
        swapped out: its successor has its own)."""
        if not (self.has_text or self.sees_photos) or not items:
            return None
        with self._lock:
            if self._closed:
                return None
            for item in items:
                self._waiting.pop(item.item_id, None)  # re-inserted: a product's order is its latest upsert's
                self._waiting[item.item_id] = item
            if self._next is None:
                self._next = self._worker.submit(self._add_waiting)
            return self._next

    def _add_waiting(self) -> None:
        """One pass over every upsert waiting when it starts; later ones go to the next pass."""
        with self._lock:
            items, self._waiting, self._next = list(self._waiting.values()), {}, None
        if items:
            self._add_items(items)

    def close(self) -> None:
        """Stop taking work and end the worker thread once the work already submitted is done."""
        with self._lock:
            self._closed = True
        self._worker.shutdown(wait=True)

    def _text_encoder(self):
        if self.search_index is not None:
            return self.search_index.encoder  # the encoder the run's vectors were made with
        if self._encoder is None:
            from deepshelf.encoders.text import TextEncoder

            self._encoder = TextEncoder(cache=False)
        return self._encoder

    def _add_items(self, items) -> None:
        ids = [it.item_id for it in items]
        texts = [". ".join([it.title, it.category, it.description]).strip(". ") for it in items]
        index = self.similar_index
        try:
            text = self._text_encoder().encode(texts).astype(np.float32)
        except Exception:  # encoding is best effort: the product is still served by trending / new arrival
            log.exception("could not encode %d upserted products", len(items))
            return
        has_text = np.array([bool(t) for t in texts])
        added = index.add(ids, text, "text", valid=has_text) if self.has_text else 0
        visual, photo, has_photo = self._photo_vectors(items) if self.sees_photos else (None, None, None)
        if visual is not None and has_photo.any():
            # only the products whose photo was read: another keeps the visual vector it has
            index.add([i for i, ok in zip(ids, has_photo) if ok], visual[has_photo], "visual")
        if self.embedder is not None and "hybrid" in index.modes:
            blocks, has_any = {}, np.zeros(len(ids), bool)
            for mode, _ in self.embedder.hybrid:  # what each product has now in every block, with the new ones
                blocks[mode], ok = index.vectors_of(ids, mode)
                blocks[mode][~ok] = 0.0
                has_any |= ok
            index.add(ids, self.embedder.hybrid_vectors(blocks), "hybrid", valid=has_any)
        if self.search_index is not None:  # searchable by its words, meaning and photo, like the run's products
            self.search_index.add(ids, texts, text, photo, has_photo, _search_attributes(items))
        log.info("content vectors for %d upserted products (%d new, %d with a photo)", len(items), added,
                 0 if has_photo is None else int(has_photo.sum()))

    def _photo_vectors(self, items):
        """(visual [n, d_v], search photo [n, d_p] or None, read bool [n]) of the products' photos; (None, None,
        None) when none could be read. A missing or unreadable photo is logged and left out."""
        try:
            with tempfile.TemporaryDirectory(prefix="deepshelf-upserted-") as folder:
                paths = [self._image_path(it, Path(folder), n) for n, it in enumerate(items)]
                web = sum(1 for it, p in zip(items, paths) if not p and "://" in (it.image_url or ""))
                if web:
                    log.info("%d upserted products' photos not read: web URLs are not fetched (upload the image, "
                             "image_base64, or give a file path)", web)
                if not any(paths):
                    return None, None, None
                if self._image_encoder is None:
                    from deepshelf.encoders.image import ImageEncoder

                    # one thread: the worker must not take the cores the requests are answered on
                    self._image_encoder = ImageEncoder(cache=False, threads=1, decode_workers=1)
                encoded = self._image_encoder.encode(paths, names=[f"item {it.item_id}" for it in items])
        except Exception:  # a photo is best effort: the product keeps its text vector
            log.exception("could not encode the photos of %d upserted products", len(items))
            return None, None, None
        ok = encoded.ok & np.array([bool(p) for p in paths])
        visual, image_input = self.embedder.visual(encoded.combined())
        visual[~ok] = 0.0
        photo = self.embedder.photo(image_input)
        if photo is not None:
            photo[~ok] = 0.0
        return visual, photo, ok

    def _image_path(self, item, folder: Path, n: int) -> str:
        """A file the image encoder can read for `item`: its uploaded image (written into `folder`), else its
        `image_url` when that is a file path or file:// URL under `image_dir`; "" otherwise (web URLs are not
        fetched)."""
        uploaded = self._store.get_image(item.item_id) if self._store is not None else None
        if uploaded is not None:
            path = folder / str(n)
            path.write_bytes(uploaded[1])
            return str(path)
        url = (item.image_url or "").strip()
        parsed = urlparse(url)
        path = unquote(parsed.path) if parsed.scheme == "file" else ("" if "://" in url else url)
        if not path:
            return ""
        # resolved first, so neither `..` nor a link leads out of the shop's image folder
        resolved = Path(path).resolve()
        if self._image_dir is None or not resolved.is_relative_to(self._image_dir):
            log.warning("product %s: image_url %r is not read: only files under the server's image_dir are "
                        "(DEEPSHELF_IMAGE_DIR)", item.item_id, url[:200])
            return ""
        return str(resolved)

    @property
    def modes(self) -> list[str]:
        return list(self.similar_index.modes)

    @property
    def can_search(self) -> bool:
        return self.search_index is not None

    def warm(self) -> None:
        """Load the search's query encoder and its understanding's dictionary before the run serves: the first
        search would otherwise load them (seconds), and at 50 searches a second every search behind it would wait
        (docs/benchmarks.md, "Served search, understood")."""
        if self.search_index is not None:
            self.search_index.warm()

    def similar(self, item_id: str, k: int, mode: str) -> tuple[list[str], list[float], str]:
        """Neighbours of `item_id` by `mode`; empty when the product has no content vector (added since)."""
        if item_id not in self.similar_index:
            return [], [], mode
        ids, scores = self.similar_index.similar(item_id, k=k, mode=mode)
        return [str(i) for i in ids], [float(s) for s in scores], mode

    def search(self, query: str, k: int) -> tuple[list[str], list[float]]:
        ids, scores, _ = self.find(query, k, understand=False)
        return ids, scores

    def find(self, query: str, k: int, understand: bool = True) -> tuple[list[str], np.ndarray, object | None]:
        """(ids, float32 scores, the `Understood` query or None) of the best `k` products for `query`."""
        index = self.search_index
        # words -> pictures only when the run learnt that bridge (a catalogue with photos); else text alone
        by = "hybrid" if index.text_tower is not None and index.photo_valid.any() else "text"
        if not understand:
            ids, scores = index.search(query, k=k, by=by)
            return [str(i) for i in ids], np.asarray(scores, np.float32), None
        rows, scores, understood = index.find(query, k=k, by=by)
        return index.item_ids[rows].tolist(), np.asarray(scores, np.float32), understood


def _search_attributes(items) -> dict[str, list[str]]:
    """Upserted products' type (category), colour and gender for search filters, from their catalogue fields."""
    def attribute(item, *names):
        got = next((v for n, v in (item.attributes or {}).items() if n.lower() in names and v is not None), "")
        return str(got)

    return {"type": [it.category or "" for it in items],
            "colour": [attribute(it, "colour", "color", "basecolour", "basecolor") for it in items],
            "gender": [attribute(it, "gender") for it in items]}


def load(run_path: Path, store=None, image_dir: Path | None = None) -> ContentFeatures | None:
    """The run's content features, or None when it has no content indexes (behaviour only). `store`: where
    upserted products' uploaded images are read from; `image_dir`: the only folder whose files an `image_url` may
    name (None: local paths are not read)."""
    folder = content_dir(run_path)
    if folder is None or not (folder / "similar.npz").exists():
        return None
    from deepshelf.content.embed import ContentEmbedder
    from deepshelf.content.search import SearchIndex
    from deepshelf.content.similar import SimilarIndex

    index = SimilarIndex.load(folder)
    search_index = SearchIndex.load(folder) if (folder / "search.npz").exists() else None
    log.info("content indexes from %s: similar by %s%s", folder, ", ".join(index.modes),
             "; semantic search" if search_index is not None else "")
    return ContentFeatures(index, search_index, ContentEmbedder.load(folder), store, image_dir)
