"""The learned ranker against fresh trending on the bundled Online Retail year (temporal protocol).

    .venv/bin/python -m benchmarks.ranker_quality                       # ranker (config's learner) vs trending
    .venv/bin/python -m benchmarks.ranker_quality --set learner=torch --set label_windows=1

Validation: each model fit on the split's train (events before the validation period), choosing what it
chooses (the ranker's learner under learner = "auto") on the validation period, and evaluated there. Test ("refit"): each model fit on every event before the test period, evaluated on the test
period, as a shop retrains up to today. Full ranking over all products, in two views: discovery (items new to
the shopper, seen items excluded) and buy again (every item bought in the period, seen items allowed). Nothing
is chosen on the test period.
"""

from __future__ import annotations

import logging
import time
import tomllib
from pathlib import Path

from benchmarks.lib import ROOT
from benchmarks.lib.cli import apply_sets, parser
from benchmarks.lib.mdsection import machine

log = logging.getLogger("ranker_quality")


def main() -> None:
    from deepshelf.data.datasets import load_dataset
    from deepshelf.data.splits import temporal
    from deepshelf.evaluation.evaluate import evaluate, validation
    from deepshelf.models.registry import model_class

    ap = parser(__doc__, whole=True)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "ranker-online-retail.toml")
    ap.add_argument("--set", action="append", default=[], help="ranker parameter override key=value")
    ap.add_argument("--baselines", default="trending", help="comma-separated models fitted the same way")
    ap.add_argument("--periods", default="validation,test", help="validation, test or both (comma-separated)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    params = tomllib.loads(args.config.read_text()).get("params", {}) if args.config.exists() else {}
    params = apply_sets(params, args.set)
    ds = load_dataset("online-retail")
    inter = ds.interactions
    split = temporal(inter, 30, 30)
    test_cut = int(inter.timestamp.max()) - 30 * 86400
    before_test = inter.subset(inter.timestamp < test_cut)

    rows = []
    models = [("ranker", params)] + [(name, {}) for name in args.baselines.split(",") if name]
    for name, p in models:
        # each fit with the catalogue as of its cut (prices and titles from the rows before it)
        for period, train, evalset, again, catalog in (
                ("validation", split.train, split.valid, split.valid_again, ds.catalog_as_of(split.valid_cut)),
                ("test (refit)", before_test, split.test, split.test_again, ds.catalog_as_of(split.test_cut))):
            if period.split()[0] not in args.periods:
                continue
            start = time.perf_counter()
            if period == "validation":  # the shop protocol: choose (the learner) on validation ...
                model = model_class(name)(**p).fit(train, catalog, validation(split.valid))
                p = {**p, **model.refit_overrides()}
            else:  # ... then refit the choice on everything before the test period
                model = model_class(name)(**p).fit(train, catalog)
            fit_s = time.perf_counter() - start
            result = evaluate(model, evalset, ks=(10,))
            m, new = result.metrics, result.slices.get("new_items", {})  # targets first sold in the period
            a = evaluate(model, again, ks=(10,)).metrics
            extra = f" learner {model.learner.name}" if name == "ranker" else ""
            rows.append((name, period, m["ndcg@10"], m["hr@10"], int(m["users"]), fit_s, extra, a["ndcg@10"],
                         a["hr@10"], new.get("hr@10", 0.0), int(new.get("users", 0))))
            log.info("%s %s: NDCG@10 %.4f HR@10 %.4f, buy again NDCG@10 %.4f HR@10 %.4f (fit %.0f s)%s", name,
                     period, m["ndcg@10"], m["hr@10"], a["ndcg@10"], a["hr@10"], fit_s, extra)
            if name == "ranker" and period == "validation":
                top = list(model.feature_importances.items())[:10]
                log.info("feature importances (gain share): %s", ", ".join(f"{k} {v:.3f}" for k, v in top))
                log.info("learner quality: %s", model.learner_quality)

    base = {(r[1]): r for r in rows if r[0] == "trending"}
    print(f"\nOnline Retail, temporal (30 days validation, 30 days test), full ranking. "
          f"Machine: {machine()}. Ranker params: {params}\n")
    print("| model | period | discovery NDCG@10 | HR@10 | vs trending NDCG / HR | users | buy again NDCG@10 | "
          "HR@10 | new-product HR@10 (users) | fit s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, period, ndcg, hr, users, fit_s, extra, again_ndcg, again_hr, new_hr, new_users in rows:
        ref = base.get(period)
        ratio = f"{ndcg / ref[2]:.2f}x / {hr / ref[3]:.2f}x" if ref else ""
        print(f"| {name}{extra} | {period} | {ndcg:.4f} | {hr:.4f} | {ratio} | {users} | {again_ndcg:.4f} | "
              f"{again_hr:.4f} | {new_hr:.4f} ({new_users}) | {fit_s:.0f} |")


if __name__ == "__main__":
    main()
