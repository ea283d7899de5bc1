"""Semantic product search: words -> text vector -> products by their text and by their photos, fused with BM25.

For a query q (one string):
- text score  = cos(text_encoder(q), product text vector)            (what the product's words say)
- photo score = cos(text_tower(text_encoder(q)), image_tower(photo))  (what its photo shows; `align.py`)
- lexical     = BM25(q, product text + id) / max over products        (Robertson & Zaragoza 2009, via bm25s)

`by="text"` ranks by text + lexical, `by="photo"` by the photo score alone (words -> pictures), `by="hybrid"`
by the mean of the text and photo scores plus the lexical term. The lexical term is what lets an exact brand
or product code win over a product that is merely "about the same thing". Optionally the top candidates are
re-ranked for one shopper by a sequential model's scores for their history (`scorer`, any `Recommender`).

`find` (the understood search the server answers) scores every product below `exact_below` products; above, only
the candidates of `candidates.py` (nearest by text vector among the filtered products, best BM25 matches, the
search log's picks), which keeps a search at 1,000,000 products to a few milliseconds.

Server use:

    search = SearchIndex.load("runs/fashion-content")    # the encoder loads lazily on the first query
    ids, scores = search.search("red summer dress", k=10, by="hybrid")   # original ids [k'], float32 [k']
    rows, scores = search.search_rows("red summer dress", k=10)          # row indices into search.item_ids

Bad input is a `DeepshelfError` with a one-line message: an empty query, one longer than `max_query_chars`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from deepshelf.content.candidates import Candidates, lexical
from deepshelf.content.feedback import SearchFeedback
from deepshelf.content.heads import Projection
from deepshelf.content.query import ATTRIBUTES, Lexicon, QueryUnderstanding, Understood
from deepshelf.content.similar import content_dir
from deepshelf.errors import DeepshelfError
from deepshelf.index.exact import topk

log = logging.getLogger(__name__)

SearchBy = Literal["text", "photo", "hybrid"]
FEEDBACK = "search_feedback.npz"  # what the run learnt from its store's search log, beside search.npz
ANN = "search.faiss"  # the candidate stage's vector index, beside search.npz (catalogues of `exact_below` or more)
EXACT_BELOW = 50_000  # products below which `find` scores every product (benchmarks/search_candidates.py)
DEPTH = 200  # candidates from each source, at least (4 x k for a deeper pool)
# Shoppers' queries are encoded by the int8 ONNX MiniLM: about half the CPU of the torch one per query, with the
# P@10 of the understood search within 0.001 of it (docs/benchmarks.md "Candidate stage"); products keep the
# run's own encoder.
QUERY_BACKEND = "onnx"


def _bm25_tokens(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


class _Rows(NamedTuple):
    item_ids: np.ndarray  # str [n]
    texts: list[str]
    text_vectors: np.ndarray  # float32 [n, d]
    photo_vectors: np.ndarray  # float32 [n, p]
    photo_valid: np.ndarray  # bool [n]
    bm25: Any  # bm25s.BM25 over "id text" of each row
    attributes: dict[str, np.ndarray]  # attribute (type, colour, gender) -> str [n] ("" unknown); may be empty
    understanding: QueryUnderstanding  # built from these rows, once (not per query)
    candidates: Candidates | None  # the candidate stage (catalogues of `exact_below` products or more)


def _rows(item_ids, texts, text_vectors, photo_vectors, photo_valid, attributes,
          candidates: Candidates | None = None) -> _Rows:
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets its logger to DEBUG on import
    # Ids join the indexed text so a shopper typing a product code finds it lexically.
    docs = [f"{item} {text}" for item, text in zip(item_ids.tolist(), texts)]
    bm25 = bm25s.BM25()
    bm25.index(bm25s.tokenize(docs, stopwords="en", show_progress=False), show_progress=False)
    text_vectors = np.ascontiguousarray(text_vectors, np.float32)
    nearest = None if candidates is None else candidates.vote_neighbours  # the vote's neighbours, same index
    understanding = QueryUnderstanding(Lexicon(texts, attributes, text_vectors, nearest=nearest))
    return _Rows(item_ids, texts, text_vectors, np.ascontiguousarray(photo_vectors, np.float32), photo_valid, bm25,
                 attributes, understanding, candidates)


def _attributes(given: dict | None, n: int) -> dict[str, np.ndarray]:
    """The attribute columns the index keeps (those of `ATTRIBUTES` given), as str [n] with "" for unknown."""
    out = {}
    for name in ATTRIBUTES:
        column = (given or {}).get(name)
        if column is not None:
            column = np.array(["" if v is None else str(v) for v in np.asarray(column, dtype=object)], dtype=np.str_)
            if len(column) != n:
                raise DeepshelfError(f"search index: attribute {name!r} has {len(column)} values for {n} products")
            out[name] = column
    return out


class SearchIndex:
    """Product search over text vectors, aligned photo vectors and a BM25 index of the product texts."""

    def __init__(self, item_ids: np.ndarray, texts: list[str], text_vectors: np.ndarray, photo_vectors: np.ndarray,
                 photo_valid: np.ndarray, text_tower: Projection | None, text_backend: str = "torch",
                 lexical_weight: float = 0.5, max_query_chars: int = 1000, encoder=None,
                 attributes: dict[str, np.ndarray] | None = None, exact_below: int | None = None,
                 candidates: Candidates | None = None, query_backend: str | None = None):
        self.text_tower = text_tower
        self.query_backend = query_backend or QUERY_BACKEND  # the encoder of queries (`encoder`): onnx, torch or e5
        self.exact_below = EXACT_BELOW if exact_below is None else exact_below
        self.text_backend = text_backend
        self.lexical_weight = lexical_weight
        self.max_query_chars = max_query_chars
        self._encoder = encoder
        self._write = threading.Lock()
        self._word_vectors: dict[str, np.ndarray] = {}  # shoppers' words the catalogue lacks, encoded once
        self.feedback: SearchFeedback | None = None  # learnt from the shop's search log (feedback.py); None: none
        text_vectors = np.ascontiguousarray(text_vectors, np.float32)
        if candidates is None and len(text_vectors) >= self.exact_below:
            candidates = Candidates.build(text_vectors)
        self._rows = _rows(np.asarray(item_ids).astype(str), list(texts), text_vectors,
                           np.asarray(photo_vectors, np.float32), np.asarray(photo_valid, bool),
                           _attributes(attributes, len(texts)), candidates)

    # The rows live in one immutable `_Rows`, replaced whole by `add`: a query reads one snapshot, so products
    # added meanwhile never leave it with vectors and a BM25 index of different lengths.
    item_ids = property(lambda self: self._rows.item_ids)
    texts = property(lambda self: self._rows.texts)
    text_vectors = property(lambda self: self._rows.text_vectors)
    photo_vectors = property(lambda self: self._rows.photo_vectors)
    photo_valid = property(lambda self: self._rows.photo_valid)

    def add(self, item_ids, texts: list[str], text_vectors: np.ndarray, photo_vectors: np.ndarray | None = None,
            photo_valid: np.ndarray | None = None, attributes: dict[str, list[str]] | None = None) -> int:
        """Set the text and text vector of `item_ids` (products upserted since the run): a known id's row is
        replaced, a new id gets a row. With `photo_vectors` [m, p] the rows where `photo_valid` [m] holds get
        that photo (the others keep theirs; a new row without one has none); with `attributes` (name -> [m]
        values, "" unknown) their type / colour / gender. The BM25 index and the query understanding are rebuilt
        over all rows. Returns how many rows were appended."""
        text_vectors = np.asarray(text_vectors, np.float32)
        m_in = len(text_vectors)
        given = np.zeros(m_in, bool) if photo_vectors is None else np.asarray(photo_valid, bool)
        with self._write:
            old = self._rows
            ids, all_texts, vecs = old.item_ids.tolist(), list(old.texts), old.text_vectors.copy()
            photos, photo_ok = old.photo_vectors.copy(), old.photo_valid.copy()
            # only the columns the index has: one a new product brings alone would leave every other product
            # unknown there (the index reads that attribute from the products' texts instead)
            attrs = {a: v.astype(object) for a, v in old.attributes.items()}
            row = {item: i for i, item in enumerate(ids)}
            new: dict[str, int] = {}  # id -> position in the arguments (the last one wins)
            changed = []
            for pos, item in enumerate(map(str, item_ids)):
                if item in row:
                    changed.append(row[item])
                    all_texts[row[item]] = texts[pos]
                    vecs[row[item]] = text_vectors[pos]
                    for a in attrs:
                        if a in (attributes or {}):
                            attrs[a][row[item]] = attributes[a][pos]
                    if given[pos]:
                        photos[row[item]], photo_ok[row[item]] = photo_vectors[pos], True
                else:
                    new[item] = pos
            picks = list(new.values())
            m = len(picks)
            new_photos = np.zeros((m, photos.shape[1]), np.float32)
            if m and given[picks].any():
                new_photos[given[picks]] = np.asarray(photo_vectors, np.float32)[picks][given[picks]]
            for a in attrs:
                given_a = (attributes or {}).get(a)
                attrs[a] = np.concatenate([attrs[a], np.array([given_a[p] if given_a is not None else ""
                                                               for p in picks], dtype=object)])
            vecs = np.concatenate([vecs, text_vectors[picks].reshape(m, vecs.shape[1])])
            cands = old.candidates
            if cands is not None:
                cands = cands.updated(vecs, np.concatenate([changed, np.arange(len(ids), len(ids) + m)]))
            elif len(vecs) >= self.exact_below:
                cands = Candidates.build(vecs)
            self._rows = _rows(np.array(ids + list(new), dtype=str), all_texts + [texts[p] for p in picks], vecs,
                               np.concatenate([photos, new_photos]), np.concatenate([photo_ok, given[picks]]),
                               _attributes(attrs, len(ids) + m), cands)
        return m

    @property
    def encoder(self):
        if self._encoder is None:
            from deepshelf.encoders.text import text_encoder

            # Queries are one-offs: caching them would only grow the cache.
            self._encoder = text_encoder(self.query_backend, role="query", cache=False)
        return self._encoder

    def _check(self, query: str) -> str:
        if not isinstance(query, str) or not query.strip():
            raise DeepshelfError("search query is empty")
        if len(query) > self.max_query_chars:
            raise DeepshelfError(f"search query is {len(query):,} characters long; the limit is "
                                 f"{self.max_query_chars:,}")
        return query.strip()

    def lexical_scores(self, queries: list[str], rows: "_Rows | None" = None) -> np.ndarray:
        """BM25 of each query against every product, divided by the query's best score: float32 [B, n] in [0, 1]."""
        rows = rows or self._rows
        out = np.zeros((len(queries), len(rows.item_ids)), np.float32)
        for b, tokens in enumerate(_bm25_tokens(queries)):  # bm25s scores one query at a time
            if tokens:
                s = rows.bm25.get_scores(tokens)
                out[b] = s / s.max() if s.max() > 0 else 0.0
        return out

    def scores(self, queries: list[str], by: SearchBy = "hybrid") -> np.ndarray:
        """Fused relevance of every product for each query: float32 [B, n] (-inf for no photo in `photo` mode)."""
        return self._scores([self._check(q) for q in queries], by, self._rows)

    def _scores(self, queries: list[str], by: SearchBy, rows: _Rows) -> np.ndarray:
        if by not in ("text", "photo", "hybrid"):
            raise DeepshelfError(f"--by {by!r}: expected text, photo or hybrid")
        q = self.encoder.encode(queries)  # (B, 384), unit rows
        semantic = self._semantic(q, by, rows)
        return semantic if by == "photo" else semantic + self.lexical_weight * self.lexical_scores(queries, rows)

    def _semantic(self, q: np.ndarray, by: SearchBy, rows: _Rows, at: np.ndarray | None = None) -> np.ndarray:
        """Text and photo relevance of unit query vectors `q` [B, d] to every row, or to rows `at` only:
        float32 [B, n] or [B, len(at)]."""
        if by != "text" and self.text_tower is None:
            raise DeepshelfError("this run has no photo alignment (it was trained without images); use by=text")
        pick = (lambda a: a) if at is None else (lambda a: a[at])
        photo = None
        if by != "text":
            photo = self.text_tower(q) @ pick(rows.photo_vectors).T  # (B, n)
            photo[:, ~pick(rows.photo_valid)] = -np.inf if by == "photo" else 0.0
            if by == "photo":
                return photo
        text = q @ pick(rows.text_vectors).T  # (B, n)
        return text if photo is None else 0.5 * (text + photo)

    def _candidates(self, query: str, text: str, by: SearchBy, rows: _Rows, keep: np.ndarray | None,
                    depth: int, boosted: np.ndarray | None = None,
                    scored: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`find`'s candidates for the understood `text` among the rows `keep` passes (candidates.py) and their
        scores, as scoring every row would give them: (int64 rows ascending, float32 scores). `boosted` (bool [n]):
        rows a literal query's attributes lift, also looked among by meaning. `scored`: where the text's encoding
        and BM25 row are kept for a second call with the same text (`find`'s fill)."""
        scored = {} if scored is None else scored
        if "text" not in scored:
            scored["text"] = self.encoder.encode([text]), self.lexical_scores([text], rows)[0]  # (1, d), [n]
        q, lex = scored["text"]
        picks = [rows.candidates.nearest(q[0], depth, keep)[0], lexical(lex, depth, keep)]
        if boosted is not None and boosted.any():
            picks.append(rows.candidates.nearest(q[0], depth, boosted)[0])
        if self.feedback is not None:  # what shoppers chose after this query is scored even if nothing found it
            chosen = self.feedback.pair_rows(query, rows.item_ids, rows.attributes)
            picks.append(chosen if keep is None else chosen[keep[chosen]])
        at = np.unique(np.concatenate(picks))
        scores = self._semantic(q, by, rows, at)[0] + self.lexical_weight * lex[at]
        boost = None if self.feedback is None else self.feedback.boost(query, rows.item_ids, rows.attributes, at=at)
        return at, scores if boost is None else scores + boost

    def _encode_words(self, words: list[str]) -> np.ndarray:
        """Unit vectors of single query words, each encoded once (up to 10,000 kept)."""
        if not words:
            return np.zeros((0, self.text_vectors.shape[1]), np.float32)
        missing = [w for w in dict.fromkeys(words) if w not in self._word_vectors]
        if missing:
            if len(self._word_vectors) > 10_000:
                self._word_vectors = {}
            self._word_vectors.update(zip(missing, self.encoder.encode(missing)))
        return np.stack([self._word_vectors[w] for w in words])

    def warm(self) -> None:
        """Load what the first search would otherwise wait for: the query encoder (about a second) and what its
        understanding reads (`QueryUnderstanding.warm`: the English dictionary, the colour tables)."""
        self.encoder.encode(["warm"])
        self._rows.understanding.warm()

    def understand(self, query: str) -> Understood:
        """The query as the search understands it (`deepshelf.content.query`): corrected words, filters, price."""
        return self._rows.understanding.understand(self._check(query), encode=self._encode_words)

    def find(self, query: str, k: int = 10, by: SearchBy = "hybrid",
             in_stock: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, Understood]:
        """Top-`k` rows for `query` as understood: (int64 rows [k'], float32 scores [k'], the `Understood`).

        The corrected text, with attribute values in the catalogue's own words, is matched by meaning and by
        BM25 among the products every parsed filter (type, colour, gender) passes; when none passes, the least
        informative filters are dropped until some do (`Understood.relaxed` says which), and a page they leave short is
        filled with the products of the nearest colours (`Understood.widened`). A literal query (every
        word one the catalogue uses, as typed) is matched as typed, its attributes adding to the score instead. Price bounds are parsed
        but applied by the caller, which knows prices."""
        if k < 1:
            raise DeepshelfError(f"k must be at least 1 (got {k})")
        rows = self._rows
        understood = rows.understanding.understand(self._check(query), encode=self._encode_words)
        if self.feedback is not None:  # what shoppers chose after these words outranks a guess by meaning
            self.feedback.refine(understood)
        keep, understood.relaxed = rows.understanding.mask(understood)
        scored: dict = {}  # what the query's text scores, whatever the rows kept: a short page's fill reuses it
        idx, top = self._page(query, understood, keep, k, by, rows, in_stock, scored)
        if len(idx) < k and keep is not None:
            idx, top = self._fill(query, understood, keep, idx, top, k, by, rows, in_stock, scored)
        return idx, top, understood

    def _page(self, query: str, understood: Understood, keep: np.ndarray | None, k: int, by: SearchBy,
              rows: _Rows, in_stock: np.ndarray | None, scored: dict) -> tuple[np.ndarray, np.ndarray]:
        """`find`'s top-`k` among the rows `keep` passes (None: all): (int64 rows, float32 scores). `scored`: the
        query text's encoding and scores, filled by the first page of a `find` and read by its fill."""
        if rows.candidates is not None and by != "photo":  # words -> pictures alone has no candidate stage
            boosted = rows.understanding.matching(understood) if understood.literal and keep is None else None
            at, scores = self._candidates(query, understood.text, by, rows, keep, max(DEPTH, 4 * k), boosted,
                                          scored)
        else:
            if "all" not in scored:
                scored["all"] = self._learned(query, rows, self._scores([understood.text], by, rows)[0])
            at, scores = None, scored["all"]
            if keep is not None:
                scores = np.where(keep, scores, -np.inf)
        boost = rows.understanding.boosts(understood, at)  # a literal query's attributes: boosts, not filters
        if boost is not None:
            scores = scores + boost
        if in_stock is not None:
            in_stock = np.asarray(in_stock, bool)
            scores = np.where(in_stock if at is None else in_stock[at], scores, -np.inf)
        idx, top = topk(scores[None, :], k)
        ok = np.isfinite(top[0])
        idx = idx[0][ok]
        return idx if at is None else at[idx], top[0][ok]

    def _fill(self, query: str, understood: Understood, keep: np.ndarray, idx: np.ndarray, top: np.ndarray, k: int,
              by: SearchBy, rows: _Rows, in_stock: np.ndarray | None, scored: dict) -> tuple[np.ndarray, np.ndarray]:
        """A page its filters leave short, filled after its products with those of the colours that look nearest
        to the one named (`QueryUnderstanding.widen`; `Understood.widened` says which)."""
        wider = rows.understanding.widen(understood)
        more_keep = None if wider is None else rows.understanding.mask(wider)[0]
        if more_keep is None or not (more_keep := more_keep & ~keep).any():
            return idx, top
        more, more_top = self._page(query, understood, more_keep, k - len(idx), by, rows, in_stock, scored)
        if not len(more):
            return idx, top
        understood.widened = [f"colour {'/'.join(sorted(wider.filters['colour'] - understood.filters['colour']))}"]
        understood.filled_from = len(idx)
        if len(top):  # below every product of the named colour, whatever a shopper's history adds (engine search)
            more_top = more_top - more_top.max() + top.min() - 1.0
        return np.concatenate([idx, more]), np.concatenate([top, more_top]).astype(np.float32)

    def search(self, query: str, k: int = 10, by: SearchBy = "hybrid", user_history=None, scorer=None,
               in_stock: np.ndarray | None = None, rerank_weight: float = 0.3,
               rerank_depth: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` products for `query` in original ids: (str [k'], float32 [k']), best first.

        `search_rows` is the same answering with row indices (int64) into `item_ids`.
        """
        idx, scores = self.search_rows(query, k, by, user_history, scorer, in_stock, rerank_weight, rerank_depth)
        return self.item_ids[idx], scores

    def search_rows(self, query: str, k: int = 10, by: SearchBy = "hybrid", user_history=None, scorer=None,
                    in_stock: np.ndarray | None = None, rerank_weight: float = 0.3,
                    rerank_depth: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` products for `query`: (int64 [k'] rows of `item_ids`, float32 [k']), best first.

        user_history: item indices (of this index's items) the shopper interacted with, oldest first; with a
        `scorer` (a fitted Recommender over the same item ids), the best `rerank_depth` candidates are re-ranked
        by relevance + rerank_weight * the scorer's standardised score for that history.
        """
        if k < 1:
            raise DeepshelfError(f"k must be at least 1 (got {k})")
        rows = self._rows
        scores = self._learned(query, rows, self._scores([self._check(query)], by, rows)[0])
        if in_stock is not None:
            scores = np.where(np.asarray(in_stock, bool), scores, -np.inf)
        if user_history is not None and scorer is not None and len(user_history):
            scores = self._rerank(scores, user_history, scorer, rerank_weight, rerank_depth)
        idx, top = topk(scores[None, :], k)
        keep = np.isfinite(top[0])
        return idx[0][keep], top[0][keep]

    def _learned(self, query: str, rows: _Rows, scores: np.ndarray) -> np.ndarray:
        """`scores` plus what the search log taught about the query as the shopper typed it (none: unchanged)."""
        boost = None if self.feedback is None else self.feedback.boost(query, rows.item_ids, rows.attributes)
        return scores if boost is None else scores + boost

    def _rerank(self, scores, user_history, scorer, weight, depth):
        from deepshelf.data.interactions import Histories

        # Map our item rows to the scorer's item indices through the original ids.
        ours_in_theirs = scorer.item_map.lookup(self.item_ids)
        hist = scorer.item_map.lookup(self.item_ids[np.asarray(user_history, np.int64)])
        hist = hist[hist >= 0]
        if not len(hist):
            return scores
        personal = scorer.score(Histories.from_lists([hist.tolist()]))[0]  # (n_scorer_items,)
        cand, _ = topk(scores[None, :], depth)
        cand = cand[0][np.isfinite(scores[cand[0]])]
        known = ours_in_theirs[cand] >= 0
        p = np.zeros(len(cand), np.float32)
        p[known] = personal[ours_in_theirs[cand[known]]]
        p = (p - p.mean()) / (p.std() + 1e-6)  # standardised so the weight means the same for any scorer
        out = np.full_like(scores, -np.inf)
        out[cand] = scores[cand] + weight * p
        return out

    # ---- persistence ---------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        rows = self._rows
        arrays = {"item_ids": rows.item_ids.astype(np.str_), "texts": np.array(rows.texts, dtype=np.str_),
                  "text_vectors": rows.text_vectors, "photo_vectors": rows.photo_vectors,
                  "photo_valid": rows.photo_valid, "text_backend": np.array(self.text_backend),
                  "query_backend": np.array(self.query_backend),
                  "lexical_weight": np.float32(self.lexical_weight),
                  "max_query_chars": np.int64(self.max_query_chars),
                  **{f"attr_{a}": v for a, v in rows.attributes.items()}}
        if self.text_tower is not None:
            arrays.update(self.text_tower.state("text_tower"))
        np.savez(folder / "search.npz", **arrays)
        if self.feedback is not None:
            self.feedback.save(folder / FEEDBACK)
        (folder / ANN).unlink(missing_ok=True)
        if rows.candidates is not None:  # saved so a server starts without rebuilding it
            rows.candidates.compact().save(folder / ANN)

    @classmethod
    def load(cls, path: str | Path, encoder=None, exact_below: int | None = None) -> "SearchIndex":
        folder = content_dir(path)
        with np.load(folder / "search.npz", allow_pickle=False) as data:
            state = {k: data[k] for k in data.files}
        tower = Projection.from_state(state, "text_tower") if "text_tower.w1" in state else None
        candidates = None
        exact_below = EXACT_BELOW if exact_below is None else exact_below
        if (folder / ANN).exists() and len(state["text_vectors"]) >= exact_below:
            try:
                candidates = Candidates.load(folder / ANN, state["text_vectors"])
            except DeepshelfError as e:  # a file from other rows: built again below
                log.warning("%s; building the search's vector index again", e)
        index = cls(state["item_ids"], state["texts"].tolist(), state["text_vectors"], state["photo_vectors"],
                    state["photo_valid"], tower, str(state["text_backend"]), float(state["lexical_weight"]),
                    int(state["max_query_chars"]), encoder=encoder,
                    attributes={a: state[f"attr_{a}"] for a in ATTRIBUTES if f"attr_{a}" in state},
                    exact_below=exact_below, candidates=candidates,
                    query_backend=str(state["query_backend"]) if "query_backend" in state else None)
        if (folder / FEEDBACK).exists():
            index.feedback = SearchFeedback.load(folder / FEEDBACK)
        return index


def load(path: str | Path) -> SearchIndex:
    """`SearchIndex.load(path)`: a run folder, its model/ folder or its content/ folder."""
    return SearchIndex.load(path)
