"""Content-based cold start on `beauty`: 10% of products removed from training entirely.

    python -m benchmarks.cold_start [--time-limit 10] [--device auto]

Leave-one-out split of Amazon Beauty; a random 10% of the products (seed 0) lose every training event ("cold").
Three recommenders are compared on the test cases whose target is a cold product (HR@10, NDCG@10, ranking over
all products, seen items excluded), and on the warm-target cases:
- `sasrec` (id-only): its cold products' embeddings were never trained on a positive, so it cannot find them;
- text similarity to the last item (all-MiniLM-L6-v2 vectors of the product texts);
- `sasrec-content`: id embedding + projected text vector, with id dropout (`deepshelf.models.sasrec_content`),
  and its new-product exposure budget (`cold_exposure_budget`, default 5%): how many text neighbours lend cold
  products their id vector and how they weigh (`--neighbours`, `--temperatures`), and how far their text
  similarity is raised, is chosen on validation: the setting that ranks "pseudo-cold" targets best (products
  with events scored as if they had none), among those that keep validation NDCG@10 within the budget of the
  id-only model's (`--exposure-baseline`).
Both SASRecs use the same parameters (the project's configs/sasrec-beauty.toml) and validation early stopping.
Target: content-aware beats both on cold targets and loses <= 5% NDCG@10 on warm targets against id-only.
Writes "Cold start (beauty)" under "Product understanding" in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import logging
import os
import time
import tomllib
from pathlib import Path

import numpy as np

from benchmarks.lib import ROOT
from benchmarks.lib.cli import docs_option, parser, publish
from benchmarks.lib.mdsection import machine
from deepshelf.data.datasets import load_dataset
from deepshelf.data.splits import make_split
from deepshelf.evaluation.evaluate import evaluate, validation
from deepshelf.models.base import Recommender
from deepshelf.models.sasrec import SASRec
from deepshelf.models.sasrec_content import ContentSASRec
from deepshelf.runs.artifacts import device_name


class LastItemText(Recommender):
    """Scores every product by the cosine of its text vector to the history's last item's."""

    name = "last-item-text"

    def __init__(self, item_map, vectors):
        super().__init__()
        self.item_map, self.vectors = item_map, vectors
        self.item_popularity = np.zeros(len(item_map), np.float32)

    def _fit(self, *args):  # pragma: no cover - built ready
        pass

    def score(self, histories):
        last = histories.items[histories.indptr[1:] - 1]
        return (self.vectors[last] @ self.vectors.T).astype(np.float32)

    def _save_weights(self, path):  # pragma: no cover - never saved
        raise NotImplementedError

    def _load_weights(self, path):  # pragma: no cover
        raise NotImplementedError


class HistoryText(LastItemText):
    """Scores every product by the cosine of its text vector to the history's recency-weighted mean text vector
    (the item `a` purchases back weighs `recency ** a`): the stronger text baseline."""

    name = "history-text"

    def __init__(self, item_map, vectors, recency: float):
        super().__init__(item_map, vectors)
        self.recency = recency

    def score(self, histories):
        ends = np.repeat(histories.indptr[1:], histories.lengths)
        age = ends - 1 - np.arange(len(histories.items))  # 0 for each history's newest item
        w = self.recency ** age.astype(np.float64)
        w /= np.repeat(np.add.reduceat(w, histories.indptr[:-1]), histories.lengths)
        query = np.add.reduceat(self.vectors[histories.items] * w[:, None].astype(np.float32),
                                histories.indptr[:-1], axis=0)
        return (query @ self.vectors.T).astype(np.float32)


def cold_split(cold_share: float):
    """(dataset, split, cold mask over the split's items, training events without the cold products, validation
    cases with a warm target): a random `cold_share` of Beauty's products (seed 0) loses every training event."""
    ds = load_dataset("beauty")
    split = make_split(ds.interactions, "leave-one-out")
    rng = np.random.default_rng(0)
    n = split.train.n_items
    cold = np.zeros(n, bool)
    cold[rng.choice(n, size=int(cold_share * n), replace=False)] = True
    train = split.train.subset(~cold[split.train.item])
    valid = split.valid.select(np.flatnonzero(~cold[split.valid.targets.items]))  # early stopping on warm only
    return ds, split, cold, train, valid


def trained(name: str, build, cache: Path | None):
    """`build()` fitted, or the model `cache / name` holds from an earlier run of this command (with the fit
    seconds it took then); saved there when fitted. Returns (model, fit seconds)."""
    folder = None if cache is None else cache / name
    if folder is not None and (folder / "model.json").exists():
        return Recommender.load(folder), json.loads((folder / "fit.json").read_text())["fit_s"]
    start = time.perf_counter()
    model = build()
    seconds = time.perf_counter() - start
    if folder is not None:
        model.save(folder)
        (folder / "fit.json").write_text(json.dumps({"fit_s": seconds}))
    return model, seconds


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--time-limit", type=float, default=10.0, help="minutes per SASRec")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cold-share", type=float, default=0.1)
    ap.add_argument("--id-dropout", type=float, default=0.2, help="sasrec-content: items trained as if cold")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a parameter of configs/sasrec-beauty.toml for both SASRecs (e.g. lr=0.003)")
    ap.add_argument("--exposure-baseline", choices=("id-only", "own"), default="id-only",
                    help="new-product exposure budget counted from the id-only model's validation NDCG@10 "
                         "(the issue's warm criterion, on validation) or from the content model's own")
    ap.add_argument("--budget", type=float, default=0.05, help="sasrec-content's cold_exposure_budget")
    ap.add_argument("--neighbours", default="1,3,10", help="sasrec-content: text neighbour counts the cold "
                    "calibration tries for a cold product's borrowed id vector")
    ap.add_argument("--temperatures", default="0,0.05", help="sasrec-content: the neighbours' weightings it tries "
                    "(0: in proportion to the text cosine; t > 0: softmax(cosine / t))")
    ap.add_argument("--models", type=Path, default=None,
                    help="folder keeping the two trained SASRecs (before calibration): reused when there, so the "
                         "cold scoring can be studied without training again")
    docs_option(ap)
    args = ap.parse_args()
    load_at_start = os.getloadavg()[0]
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the calibration's table of choices
    params = tomllib.loads((ROOT / "configs" / "sasrec-beauty.toml").read_text())["params"]
    overrides = dict(item.split("=", 1) for item in args.set)
    params.update(overrides, time_limit=args.time_limit, device=args.device, progress=False)
    if args.device != "cpu":
        params.pop("threads", None)
    ds, split, cold, train, valid = cold_split(args.cold_share)
    n = split.train.n_items
    targets = split.test.targets.items  # one per user (leave-one-out)
    cold_rows, warm_rows = np.flatnonzero(cold[targets]), np.flatnonzero(~cold[targets])
    from deepshelf.encoders.text import TextEncoder

    vectors = TextEncoder().encode(ds.catalog.texts_for(split.train.item_map))
    recencies = (0.3, 0.5, 0.7, 0.9)  # the history-text baseline's, chosen on validation like the model's
    by_recency = {r: validation(valid)(HistoryText(split.train.item_map, vectors, r)) for r in recencies}
    recency = max(by_recency, key=by_recency.get)
    print("history text: validation NDCG@10 by recency", {r: round(v, 4) for r, v in by_recency.items()}, flush=True)

    ids_only, ids_seconds = trained("sasrec", lambda: SASRec(**params).fit(train, ds.catalog, validation(valid)),
                                    args.models)

    def content_fit() -> ContentSASRec:
        # the cold products' scoring is calibrated below, against the chosen baseline
        return ContentSASRec(**params, id_dropout=args.id_dropout, cold_exposure_budget=0.0).fit(
            train, ds.catalog, validation(valid))

    content_model, content_seconds = trained("sasrec-content", content_fit, args.models)
    as_trained = {part: evaluate(content_model, split.test.select(r), (10,)).metrics
                  for part, r in (("cold", cold_rows), ("warm", warm_rows))}  # before the cold calibration
    start = time.perf_counter()
    baseline = evaluate(ids_only, valid, (10,)).metrics["ndcg@10"] if args.exposure_baseline == "id-only" else None
    neighbours = tuple(int(x) for x in args.neighbours.split(","))
    temperatures = tuple(float(x) for x in args.temperatures.split(","))
    k, setting = content_model.calibrate_cold(validation(valid), args.budget, baseline=baseline,
                                              neighbours=neighbours, temperatures=temperatures)
    temperature = content_model.config.impute_temperature
    content_seconds += time.perf_counter() - start
    models = {
        "sasrec (id only)": (ids_only, ids_seconds),
        "text similarity to the last item": (LastItemText(split.train.item_map, vectors), 0.0),
        f"text similarity to the history (recency {recency:g})": (
            HistoryText(split.train.item_map, vectors, recency), 0.0),
        "sasrec-content (id + text)": (content_model, content_seconds),
    }
    results, seconds = {}, {}
    for name, (model, fit_s) in models.items():
        seconds[name] = fit_s
        results[name] = {part: evaluate(model, split.test.select(r), (10,)).metrics
                         for part, r in (("cold", cold_rows), ("warm", warm_rows))}
        print(name, {p: {m: round(v, 4) for m, v in r.items() if m in ("hr@10", "ndcg@10")}
                     for p, r in results[name].items()}, f"{seconds[name]:.0f}s", flush=True)
    names = list(results)
    ids_r, last_r, hist_r, content = (results[x] for x in names)
    before = "sasrec-content, cold products as trained (no calibration)"
    results = {**{x: results[x] for x in names[:3]}, before: as_trained, names[3]: content}
    seconds[before] = seconds[names[3]]
    ratio_last = content["cold"]["ndcg@10"] / max(last_r["cold"]["ndcg@10"], 1e-12)
    ratio_hist = content["cold"]["ndcg@10"] / max(hist_r["cold"]["ndcg@10"], 1e-12)
    warm_loss = 1 - content["warm"]["ndcg@10"] / max(ids_r["warm"]["ndcg@10"], 1e-12)
    sets = "".join(f" --set {k}={v}" for k, v in overrides.items())
    baseline_name = "the id-only model's" if args.exposure_baseline == "id-only" else "its own"
    with_overrides = (" with " + ", ".join(f"{k} = {v}" for k, v in overrides.items())) if overrides else ""
    models_opt = f" --models {args.models}" if args.models else ""
    lines = [f"Command: `python -m benchmarks.cold_start --time-limit {args.time_limit:g} --device {args.device} "
             f"--id-dropout {args.id_dropout:g} --exposure-baseline {args.exposure_baseline} "
             f"--budget {args.budget:g} --neighbours {args.neighbours} --temperatures {args.temperatures}"
             f"{sets}{models_opt}`  ",
             f"Machine: {machine()}; torch device {device_name()}; load average {load_at_start:.1f} at the start, "
             f"{os.getloadavg()[0]:.1f} at the end (shared machine); measured "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.  ",
             f"Beauty, leave-one-out; {cold.sum():,} of {n:,} products ({args.cold_share:.0%}, seed 0) have no "
             f"training events; {len(cold_rows):,} test cases have a cold target, {len(warm_rows):,} a warm one. "
             f"SASRec parameters from configs/sasrec-beauty.toml{with_overrides}, "
             f"at most {args.time_limit:g} min training each; "
             "validation (early stopping and every choice) uses warm targets only. "
             "The content model scores a product without events as `alpha * (id vector borrowed from k text "
             "neighbours + projected text) . state + factor * (newest-item text similarity) + weight * cos(text, "
             "history's recency-weighted text) + bias`, products with events as trained; the k neighbours weigh "
             "in proportion to their text cosine (temperature 0) or by softmax(cosine / temperature). Among the "
             f"settings (k in {args.neighbours}, temperature in {args.temperatures}) that "
             f"kept validation NDCG@10 within {args.budget:.0%} of {baseline_name}, it chose the one that ranked "
             "pseudo-cold validation targets best (10% of the products with events scored as if they had none): "
             f"k = {k}, temperature = {temperature:g}, alpha = {setting.alpha:g}, factor = {setting.factor:g}, "
             f"weight = {setting.weight:g}, "
             f"recency = {setting.recency:g}, bias = {setting.bias:.3g}. The history-text baseline's recency "
             f"({recency:g}) is its best validation NDCG@10 among {', '.join(f'{r:g}' for r in recencies)}.", "",
             "| model | cold HR@10 | cold NDCG@10 | warm HR@10 | warm NDCG@10 | fit s |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['cold']['hr@10']:.4f} | {r['cold']['ndcg@10']:.4f} | {r['warm']['hr@10']:.4f} | "
                     f"{r['warm']['ndcg@10']:.4f} | {seconds[name]:.0f} |")
    hits = {name: round(r["cold"]["hr@10"] * len(cold_rows)) for name, r in results.items()}
    lines += ["", f"Cold NDCG@10: {ratio_last:.2f}x text similarity to the last item's (goal >= 1.2x: "
              f"{'met' if ratio_last >= 1.2 else 'NOT met'}), {ratio_hist:.2f}x text similarity to the history's "
              f"({'beats it' if ratio_hist > 1 else 'does NOT beat it'}); cold targets in its top 10: "
              f"{hits[names[3]]:,} of {len(cold_rows):,} (last-item text {hits[names[1]]:,}, history text "
              f"{hits[names[2]]:,}). Its warm NDCG@10 is {abs(warm_loss):.1%} "
              f"{'below' if warm_loss > 0 else 'above'} id-only's (allowed: at most 5% below): "
              f"{'met' if warm_loss <= 0.05 else 'NOT met'}."]
    publish("\n".join(lines), args, "Product understanding", sub="Cold start (beauty)")


if __name__ == "__main__":
    main()
