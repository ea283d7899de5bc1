"""New products on the bundled Online Retail year: how often the text match picks a product a shopper buys although
nobody had bought it before the cut, and what the ranker's exploration share (`new_slots`) trades for it; writes the
"New products" section of docs/benchmarks.md.

    deepshelf train --config configs/ranker-online-retail.toml --out runs/ranker-explore
    python -m benchmarks.new_products --runs explore-only=runs/ranker-explore learned=runs/ranker-learned
    python -m benchmarks.new_products --runs ... --print-only

Part 1 (no model but `newitems`): each text reading of `newitems` (words: TF-IDF over the catalogue; meaning: the
sentence encoder; both: words plus a weight of meaning), fit as the pipeline fits it (the events before each cut,
the catalogue as of the cut), and the share of the new-product buyers (shoppers who buy, in the period, a product
never sold before its cut) whose best (or two best) matched new products include one they bought; beside it, one
random new product's chance. Part 2: each given ranker run's validation (first fit) and test (refit) lists with
0, 1 and 2 exploration places in the top 10: the whole discovery list's NDCG@10 and HR@10, and the new-product
slice's HR@10 and recall@10, through the same `recommend()` the server calls; trending's NDCG@10 beside them.
"""

from __future__ import annotations

import numpy as np

from benchmarks.lib.cli import docs_option, parser, publish
from benchmarks.lib.mdsection import machine
from deepshelf.data.datasets import load_dataset
from deepshelf.data.splits import temporal
from deepshelf.evaluation.evaluate import evaluate
from deepshelf.models.newitems import NewItems
from deepshelf.models.popularity import Trending
from deepshelf.runs.artifacts import load_run
from deepshelf.runs.pipeline import eval_split_of, fit_catalogs, view_model

READINGS = [("words", {"text": "words"}), ("meaning", {"text": "meaning"}),
            ("both, meaning x0.25", {"text": "both", "meaning_weight": 0.25}),
            ("both, meaning x0.5", {"text": "both", "meaning_weight": 0.5}),
            ("both, meaning x1", {"text": "both", "meaning_weight": 1.0})]
SLOTS = (0, 1, 2)


def text_match_rows() -> list[str]:
    ds = load_dataset("online-retail")
    split = temporal(ds.interactions)
    valid_catalog, test_catalog = fit_catalogs(ds, split)
    periods = (("valid", split.valid, split.train, valid_catalog), ("test", split.test, split.before_test,
                                                                      test_catalog))
    rows = ["| text reading | valid: 1 place | valid: 2 places | test: 1 place | test: 2 places |",
            "|---|---:|---:|---:|---:|"]
    random = []
    cells: dict[str, list[str]] = {name: [] for name, _ in READINGS}
    for period, evalset, train, catalog in periods:
        _, buyers = evalset.restrict_targets(evalset.target_slices["new_items"])
        for name, params in READINGS:
            model = NewItems(**params).fit(train, catalog)
            idx, _ = model.recommend(buyers.inputs, k=2)
            hit = [np.isin(idx[b, :n], buyers.targets[b]).any() for n in (1, 2) for b in range(len(buyers))]
            hit = np.array(hit).reshape(2, len(buyers)).mean(axis=1)
            cells[name] += [f"{hit[0]:.3f}", f"{hit[1]:.3f}"]
        n_new = int(model.is_new.sum())
        random.append(f"{period}: {len(buyers)} buyers of {n_new} new products, one random new product "
                      f"{np.mean([len(t) for t in buyers.targets]) / n_new:.3f}")
    rows += [f"| {name} | " + " | ".join(c) + " |" for name, c in cells.items()]
    return rows + ["", "Chance: " + "; ".join(random) + "."]


def exploration_rows(runs: list[tuple[str, str]]) -> list[str]:
    rows = ["| run | view | places | NDCG@10 | HR@10 | x trending NDCG@10 | new-product HR@10 | new-product recall@10 |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    trending: dict[str, float] = {}
    for label, path in runs:
        run = load_run(path)
        for which in ("valid", "test"):
            ds, split, evalset = eval_split_of(run, which)
            if which not in trending:
                train = split.train if which == "valid" else split.before_test
                trending[which] = evaluate(Trending().fit(train), evalset, ks=(10,)).metrics["ndcg@10"]
            model = view_model(run, which)
            for slots in SLOTS:
                model.config.new_slots = slots
                r = evaluate(model, evalset, ks=(10,))
                new = r.slices.get("new_items", {})
                m = r.metrics
                rows.append(f"| {label} | {which} | {slots} | {m['ndcg@10']:.4f} | {m['hr@10']:.4f} | "
                            f"{m['ndcg@10'] / trending[which]:.2f}x | {new.get('hr@10', 0.0):.4f} | "
                            f"{new.get('recall@10', 0.0):.4f} |")
    rows.append("")
    rows.append("Trending (fit on the same events): " + ", ".join(f"{w} NDCG@10 {v:.4f}" for w, v in trending.items()))
    return rows


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--runs", nargs="*", default=[], metavar="LABEL=RUN", help="ranker runs (deepshelf train)")
    docs_option(ap, "--print-only")
    args = ap.parse_args()
    runs = [tuple(r.split("=", 1)) for r in args.runs]
    lines = [f"Command: `python -m benchmarks.new_products --runs {' '.join(args.runs)}`  ",
             f"Machine: {machine()}.  ",
             "Online Retail, temporal protocol (last 30 days test, 30 before validation); new products: never sold "
             "before the period's cut (the catalogue lists them, as of the cut). The catalogue knows every product "
             "the file ever sells, so \"new\" here means \"will sell at some point\": a shop's catalogue also lists "
             "products that never sell, which makes its chance lower than the one below.", "",
             "### Text match: the best new products for a new-product buyer", ""]
    lines += text_match_rows()
    if runs:
        lines += ["", "### The ranker's exploration share (places in the top 10)", ""]
        lines += exploration_rows(runs)
    publish("\n".join(lines), args, "New products")


if __name__ == "__main__":
    main()
