"""SASRec alone on the bundled Online Retail year, tuned on its validation period (temporal protocol).

    .venv/bin/python -m benchmarks.sasrec_shop                                   # the recipe below
    .venv/bin/python -m benchmarks.sasrec_shop --set layers=2 --set max_len=100 --periods validation

Validation: SASRec fit on the split's train (events before the validation period), NDCG@10 on the validation
period after every epoch (discovery view: items new to the shopper), the best epoch kept; fresh trending fit the
same way beside it. Test ("refit"): SASRec refit on every event before the test period for the epochs
validation chose, trending likewise. Budget by epochs (not wall time), so the numbers do not depend on the
machine's load. Nothing is chosen on the test period.
"""

from __future__ import annotations

import logging
import os
import time

from benchmarks.lib.cli import apply_sets, parser
from benchmarks.lib.mdsection import machine

log = logging.getLogger("sasrec_shop")

# A small recipe for a shop's purchase sequences (the ranker's `sasrec` generator uses the same): one block of
# width 64 over the newest 50 purchases; Beauty's recipe (configs/sasrec-beauty.toml) has two blocks and 50 epochs.
RECIPE = dict(layers=1, dim=64, max_len=50, dropout=0.3, lr=0.002, epochs=12, patience=3, batching="by_length",
              lr_schedule="constant", threads=1, progress=False)


def main() -> None:
    from deepshelf.data.datasets import load_dataset
    from deepshelf.data.splits import temporal
    from deepshelf.evaluation.evaluate import evaluate, validation
    from deepshelf.models.registry import model_class

    ap = parser(__doc__, whole=True)
    ap.add_argument("--set", action="append", default=[], help="SASRec parameter override key=value")
    ap.add_argument("--periods", default="validation,test", help="validation, test or both (comma-separated)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    params = apply_sets(RECIPE, args.set)

    ds = load_dataset("online-retail")
    inter = ds.interactions
    split = temporal(inter, 30, 30)
    before_test = inter.subset(inter.timestamp < split.test_cut)
    rows, chosen = [], {}
    for period in ("validation", "test (refit)"):
        if period.split()[0] not in args.periods:
            continue
        train, evalset = (split.train, split.valid) if period == "validation" else (before_test, split.test)
        for name in ("sasrec", "trending"):
            p = {**params, **chosen} if name == "sasrec" else {}
            start = time.perf_counter()
            model = model_class(name)(**p)
            model.fit(train, None, validation(split.valid) if period == "validation" and name == "sasrec" else None)
            fit_s = time.perf_counter() - start
            m = evaluate(model, evalset, ks=(10,)).metrics
            if name == "sasrec":
                for e in model.training_log:
                    log.info("epoch %s: loss %.4f, %.0f s, validation NDCG@10 %s", e.get("epoch"), e.get("loss", 0),
                             e.get("seconds", 0), e.get("valid_ndcg@10", "-"))
                if period == "validation":
                    chosen = model.refit_overrides()
            # epochs: the best of those run on validation (the refit's count), the count run on the refit
            ran = len(model.training_log) if name == "sasrec" else 0
            epochs = "" if not ran else f"{chosen.get('epochs', ran)} of {ran}" if period == "validation" else ran
            rows.append((name, period, m["ndcg@10"], m["hr@10"], int(m["users"]), fit_s, epochs))
            log.info("%s %s: NDCG@10 %.4f HR@10 %.4f (fit %.0f s)", name, period, m["ndcg@10"], m["hr@10"], fit_s)

    base = {r[1]: r for r in rows if r[0] == "trending"}
    print(f"\nOnline Retail, temporal (30 days validation, 30 days test), full ranking, discovery view. "
          f"Machine: {machine()}, load average {os.getloadavg()[0]:.1f}. SASRec params: {params}\n")
    print("| model | period | NDCG@10 | HR@10 | vs trending NDCG | users | epochs (best of run) | fit s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, period, ndcg, hr, users, fit_s, epochs in rows:
        ref = base.get(period)
        ratio = f"{ndcg / ref[2]:.2f}x" if ref and ref[2] else ""
        print(f"| {name} | {period} | {ndcg:.4f} | {hr:.4f} | {ratio} | {users} | {epochs} | {fit_s:.0f} |")


if __name__ == "__main__":
    main()
