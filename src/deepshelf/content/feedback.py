"""Search learning: what shoppers chose after their searches tunes the search ranking (issue 29, part 2).

A run trained from a store reads its search log (storage/search_log.py: each search's words with the products
clicked, carted or bought from it) and learns two tables, each a boost added to a product's search score:

- **query -> product**: for a query seen before (normalised as stored, `normalise_query`), each product chosen
  from it, with strength w / (w + `pair_prior`), w the summed weights of its clicks, carts and purchases;
  boost = `pair_weight` x strength. It remembers what shoppers wanted for that exact query.
- **query words -> product attributes** (type, colour, gender: the search index's attribute columns): how much more
  often a product with value v is chosen after a query holding word w than after any search,
  lift(w, v) = log(P(v | w) / P(v)), with P(v | w) = (n(w, v) + m P(v)) / (n(w) + m), counts weighted as above,
  P(v) the share of v among every chosen product and m = `word_prior` pseudo-choices (a word chosen after
  rarely says little). A query's evidence for v is the sum of its words' lifts (naive Bayes: words as independent
  evidence), clipped to +-`clip`; boost = `attribute_weight` x the evidence for the product's own value of each
  attribute, summed over attributes. This generalises: "kicks" learnt from clicks on shoes lifts every shoe,
  also for "red kicks" never searched before, and in products never shown.

Words every search shares ("for", "a") have lift ~ 0 by construction (their choices look like all choices). A
shop with no search log learns nothing (`fit` answers None) and searches exactly as before. The benchmark that
trains on earlier days of a simulated log and measures later days is benchmarks/search_learning.py.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

_WORD = re.compile(r"[^\W_]+")
MAX_QUERY_CHARS = 500  # as the search route accepts


def normalise_query(text: str) -> str:
    """A query as the search log stores and learns it: Unicode NFKC, lower case, runs of spaces as one, trimmed,
    at most 500 characters."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())[:MAX_QUERY_CHARS]


def query_words(text: str) -> list[str]:
    """The distinct words (runs of letters or digits) of a normalised query, in order."""
    return list(dict.fromkeys(_WORD.findall(text)))


class FeedbackConfig(BaseModel):
    """How the search log tunes search (ContentConfig.feedback); the weights were chosen on the development days
    of benchmarks/search_learning.py."""

    model_config = ConfigDict(extra="forbid")
    learn: bool = True  # False: a run ignores its store's search log
    kind_weights: dict[str, float] = Field(default_factory=lambda: {"view": 1.0, "cart": 2.0, "purchase": 3.0})
    pair_weight: float = Field(default=0.3, ge=0)
    pair_prior: float = Field(default=2.0, gt=0)
    attribute_weight: float = Field(default=0.1, ge=0)
    word_prior: float = Field(default=5.0, gt=0)
    clip: float = Field(default=3.0, gt=0)
    min_word_choices: float = Field(default=2.0, ge=0)  # words chosen after less (weighted) are not kept
    # a word shoppers choose one attribute value after (at most 3 values holding filter_share of its choices, over
    # filter_min weighted choices) names it: a filter, as a catalogue word would, overriding a guess by meaning
    filter_share: float = Field(default=0.8, gt=0, le=1)
    filter_min: float = Field(default=10.0, ge=0)
    filter_lift: float = Field(default=0.7, ge=0)  # ... and they are at least e^0.7 = 2x as likely after it


class SearchFeedback:
    """The learnt tables and the boost they give a query over a search index's rows."""

    def __init__(self, pairs: pl.DataFrame, words: np.ndarray, values: dict[str, np.ndarray],
                 lifts: dict[str, np.ndarray], config: FeedbackConfig, priors: dict[str, np.ndarray],
                 chosen: dict[str, np.ndarray], info: dict | None = None):
        self.config = config
        self.pairs = pairs  # query, item, strength
        self.words = np.asarray(words, dtype=np.str_)  # [W]
        self._word_row = {w: i for i, w in enumerate(self.words.tolist())}
        self.values = values  # attribute -> str [V_a]
        self.lifts = lifts  # attribute -> float32 [W, V_a]
        self.priors = priors  # attribute -> float [V_a]: P(v) among every chosen product
        self.chosen = chosen  # attribute -> float [W]: n(w), the weighted choices after a query with the word
        self._by_query = {q: (g["item"].to_numpy().astype(str), g["strength"].to_numpy().astype(np.float32))
                          for (q,), g in pairs.group_by("query")} if pairs.height else {}
        self.info = info or {}
        self._bound: tuple | None = None  # (item_ids array bound, attribute codes, item -> row)

    # ---- learning --------------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, log: pl.DataFrame | None, item_ids: np.ndarray, attributes: dict[str, np.ndarray],
            config: FeedbackConfig | None = None) -> "SearchFeedback | None":
        """Learn from `log` (query, item, kind rows) over the products `item_ids` with their `attributes`
        (name -> str [n], "" unknown). None when nothing can be learnt (no log, no choice of a known product)."""
        config = config or FeedbackConfig()
        if log is None or not config.learn or log.height == 0:
            return None
        weight = pl.col("kind").replace_strict(config.kind_weights, default=0.0, return_dtype=pl.Float64)
        rows = pl.DataFrame({"item": np.asarray(item_ids).astype(str)}).with_row_index("row")
        chosen = (log.select(pl.col("query").map_elements(normalise_query, return_dtype=pl.Utf8), "item",
                             weight.alias("w"))
                  .filter(pl.col("w") > 0).join(rows, on="item", how="inner"))
        if chosen.height == 0:
            return None
        pairs = (chosen.group_by("query", "item").agg(pl.col("w").sum())
                 .with_columns(strength=pl.col("w") / (pl.col("w") + config.pair_prior))
                 .select("query", "item", "strength").sort("query", "item"))
        per_word = (chosen.with_columns(word=pl.col("query").map_elements(query_words, return_dtype=pl.List(pl.Utf8)))
                    .explode("word").drop_nulls("word"))
        totals = per_word.group_by("word").agg(n=pl.col("w").sum()).filter(pl.col("n") >= config.min_word_choices)
        words = np.sort(totals["word"].to_numpy().astype(str))
        word_index = pl.DataFrame({"word": words}).with_row_index("wrow")
        values, lifts, priors, chosen_n = {}, {}, {}, {}
        for name, column in attributes.items():
            column = np.asarray(column).astype(str)
            known = chosen.with_columns(value=pl.Series(column[chosen["row"].to_numpy()])).filter(pl.col("value") != "")
            if known.height == 0 or not len(words):
                continue
            vals = np.unique(known["value"].to_numpy().astype(str))
            value_index = pl.DataFrame({"value": vals}).with_row_index("vrow")
            share = (known.group_by("value").agg(pl.col("w").sum()).join(value_index, on="value")
                     .sort("vrow")["w"].to_numpy())
            prior = share / share.sum()  # P(v) among every chosen product
            counts = np.zeros((len(words), len(vals)), np.float64)
            cells = (per_word.with_columns(value=pl.Series(column[per_word["row"].to_numpy()]))
                     .group_by("word", "value").agg(pl.col("w").sum())  # words split once, above
                     .join(word_index, on="word").join(value_index, on="value"))
            counts[cells["wrow"].to_numpy(), cells["vrow"].to_numpy()] = cells["w"].to_numpy()
            m = config.word_prior
            posterior = (counts + m * prior) / (counts.sum(1, keepdims=True) + m)
            values[name], priors[name], chosen_n[name] = vals, prior, counts.sum(1)
            lifts[name] = np.log(posterior / prior).astype(np.float32)
        info = {"choices": int(chosen.height), "queries": int(chosen["query"].n_unique()),
                "pairs": int(pairs.height), "words": int(len(words)), "attributes": sorted(lifts)}
        return cls(pairs, words, values, lifts, config, priors, chosen_n, info)

    # ---- serving ---------------------------------------------------------------------------------------------
    def named(self, word: str, attribute: str) -> set[str] | None:
        """The values of `attribute` shoppers choose after `word` (filter_share of its choices, at most 3), when
        the log says so firmly enough (filter_min, filter_lift); else None."""
        row = self._word_row.get(word)
        if row is None or attribute not in self.lifts or self.chosen[attribute][row] < self.config.filter_min:
            return None
        lift = self.lifts[attribute][row].astype(np.float64)
        if lift.max() < self.config.filter_lift:
            return None
        posterior = np.exp(lift) * self.priors[attribute]
        order = np.argsort(-posterior, kind="stable")[:3]
        enough = np.flatnonzero(np.cumsum(posterior[order]) >= self.config.filter_share)
        return None if not len(enough) else set(self.values[attribute][order[:enough[0] + 1]].tolist())

    def refine(self, understood) -> None:
        """What shoppers' choices say a word names replaces what the query understanding guessed by meaning for it
        (`Understood.learnt`), and names an attribute the words left open; the text searched for follows."""
        guessed = {(w, a): v for w, a, v in understood.learnt}
        said = {w for phrases in understood.phrases.values() for p in phrases for w in p.split()}
        for w in query_words(normalise_query(understood.query)):
            for a in self.lifts:
                if (w in said and (w, a) not in guessed) or (a in understood.filters and (w, a) not in guessed):
                    continue  # named by the catalogue's or the table's own words: kept as understood
                values = self.named(w, a)
                if values is None:
                    continue
                old = guessed.get((w, a))
                now = understood.filters.setdefault(a, set())
                if old is not None:
                    now.discard(old)
                    understood.text = understood.text.replace(old, "").strip()
                now |= values
                if w not in understood.phrases.setdefault(a, []):
                    understood.phrases[a].append(w)
                understood.learnt = [x for x in understood.learnt if x[:2] != (w, a)] + [(w, a, v) for v in
                                                                                       sorted(values)]
                if a == "type":
                    understood.text = " ".join([understood.text, *sorted(values)]).strip()

    def _bind(self, item_ids: np.ndarray, attributes: dict[str, np.ndarray]) -> tuple:
        """Per attribute, each row's value index (-1: a value never chosen, or unknown), and item -> row for the
        learnt pairs' items; computed once per set of rows (an index's rows change only when products are added)."""
        bound = self._bound
        if bound is not None and bound[0] is item_ids:
            return bound
        codes = {}
        for name, vals in self.values.items():
            column = attributes.get(name)
            if column is not None:
                pos = np.searchsorted(vals, column)
                hit = (pos < len(vals)) & (vals[np.minimum(pos, len(vals) - 1)] == column)
                codes[name] = np.where(hit, pos, -1).astype(np.int64)
        rows: dict[str, int] = {}
        if self.pairs.height:
            found = (pl.DataFrame({"item": item_ids}).with_row_index("row")
                     .join(self.pairs.select(pl.col("item").unique()), on="item", how="inner"))
            rows = dict(zip(found["item"].to_list(), found["row"].to_list()))
        self._bound = bound = (item_ids, codes, rows)
        return bound

    def boost(self, query: str, item_ids: np.ndarray, attributes: dict[str, np.ndarray],
              at: np.ndarray | None = None) -> np.ndarray | None:
        """What the log adds to each row's score for `query` (float32 [n], or [len(at)] for rows `at` only), or
        None when it knows nothing of the query or its words."""
        text = normalise_query(query)
        known = [self._word_row[w] for w in query_words(text) if w in self._word_row]
        pair = self._by_query.get(text)
        if not known and pair is None:
            return None
        _, codes, _ = self._bind(item_ids, attributes)
        out = np.zeros(len(item_ids) if at is None else len(at), np.float32)
        c = self.config
        if known and c.attribute_weight > 0:
            for name, code in codes.items():
                evidence = np.clip(self.lifts[name][known].sum(0), -c.clip, c.clip)
                picked = code if at is None else code[at]
                out += c.attribute_weight * np.append(evidence, np.float32(0.0))[picked]  # -1: the appended 0
        if pair is not None and c.pair_weight > 0:
            rows, strength = self._pair(text, item_ids, attributes)
            if at is not None:  # the pairs' rows among `at` (ascending), and where they sit in it
                pos = np.minimum(np.searchsorted(at, rows), max(len(at) - 1, 0))
                hit = (at[pos] == rows) if len(at) else np.zeros(len(rows), bool)
                rows, strength = pos[hit], strength[hit]
            np.add.at(out, rows, c.pair_weight * strength)
        return out

    def pair_rows(self, query: str, item_ids: np.ndarray, attributes: dict[str, np.ndarray]) -> np.ndarray:
        """Rows of the products shoppers chose after this very query (int64, possibly empty)."""
        return self._pair(normalise_query(query), item_ids, attributes)[0]

    def _pair(self, text: str, item_ids: np.ndarray, attributes: dict[str, np.ndarray]) -> tuple:
        """(int64 rows, float32 strengths) of the learnt pairs of the normalised query `text` present in the rows."""
        pair = self._by_query.get(text)
        if pair is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        rows = self._bind(item_ids, attributes)[2]
        items, strength = pair
        at = np.array([rows.get(i, -1) for i in items.tolist()], np.int64)
        return at[at >= 0], np.asarray(strength, np.float32)[at >= 0]

    # ---- persistence -----------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        arrays = {"pair_query": self.pairs["query"].to_numpy().astype(np.str_),
                  "pair_item": self.pairs["item"].to_numpy().astype(np.str_),
                  "pair_strength": self.pairs["strength"].to_numpy().astype(np.float32),
                  "words": self.words, "config": np.array(self.config.model_dump_json()),
                  **{f"priors_{a}": v for a, v in self.priors.items()},
                  **{f"chosen_{a}": v for a, v in self.chosen.items()},
                  **{f"values_{a}": v.astype(np.str_) for a, v in self.values.items()},
                  **{f"lifts_{a}": v for a, v in self.lifts.items()}}
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> "SearchFeedback":
        with np.load(path, allow_pickle=False) as data:
            state = {k: data[k] for k in data.files}
        pairs = pl.DataFrame({"query": state["pair_query"].astype(str), "item": state["pair_item"].astype(str),
                              "strength": state["pair_strength"]})
        names = [k[len("values_"):] for k in state if k.startswith("values_")]
        return cls(pairs, state["words"], {a: state[f"values_{a}"] for a in names},
                   {a: state[f"lifts_{a}"] for a in names}, FeedbackConfig.model_validate_json(str(state["config"])),
                   {a: state[f"priors_{a}"] for a in names}, {a: state[f"chosen_{a}"] for a in names})
