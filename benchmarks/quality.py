"""Quality of the classic models: leave-one-out on ml-1m and beauty, the shop protocol on Online Retail.

    python -m benchmarks.quality [--datasets ml-1m beauty] [--models popularity itemknn ease als]
    python -m benchmarks.quality --datasets online-retail --models popularity trending itemknn ease als [--print-only]

Trains each model through `deepshelf.runs.pipeline.train_run` (the path `deepshelf train` takes), so the numbers are
the ones `metrics.json` records. Leave-one-out datasets go to the "Classic models" section of docs/benchmarks.md;
timestamped ones (temporal protocol) to "Online Retail: discovery and buy again", one row per model with each view
of `TEMPORAL_VIEWS` (discovery: items new to the shopper, seen items excluded; buy again: every item bought in the
period, seen items allowed), the test period before the refit (the model fit before validation) and after it (the
model refit on every event before the test period), and the test period's new-item slice. `--print-only` prints
without writing the doc.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.lib.cli import docs_option, parser, publish
from benchmarks.lib.mdsection import machine
from deepshelf.runs.config import build_train_config
from deepshelf.runs.pipeline import train_run

# Per-dataset parameters, fixed before the run (never chosen on the test split).
PARAMS = {
    ("ml-1m", "ease"): ["l2=500"],
    ("beauty", "ease"): ["l2=100"],
    ("ml-1m", "als"): ["factors=64", "iterations=15"],
    ("beauty", "als"): ["factors=64", "iterations=15"],
}


@dataclass(frozen=True)
class View:
    """One column group of the temporal table and where metrics.json keeps it."""

    label: str
    keys: tuple[str, ...]  # path inside metrics.json to {"metrics": ..., "slices": ...}


# Each view adds HR@10 / NDCG@10 columns. The test period is scored twice: by the model fit before the validation
# period ("stale", metrics.json's before_refit) and by the one refit on every event before the test period (what a
# run saves and serves); a run without a refit has only the first.
TEMPORAL_VIEWS = (
    View("valid discovery", ("valid",)),
    View("valid buy again", ("valid_again",)),
    View("test discovery, stale", ("before_refit", "test")),
    View("test discovery, refit", ("test",)),
    View("test buy again, stale", ("before_refit", "test_again")),
    View("test buy again, refit", ("test_again",)),
)
# the views whose "new_items" slice (targets first sold in the period) is shown
NEW_ITEMS_VIEWS = ("test discovery, stale", "test discovery, refit")


def lookup(metrics: dict, keys: tuple[str, ...]) -> dict | None:
    for key in keys:
        if not isinstance(metrics, dict) or key not in metrics:
            return None
        metrics = metrics[key]
    return metrics


def temporal_views(metrics: dict) -> dict[str, dict]:
    """{view label: {"metrics": ..., "slices": ...}} for the views metrics.json records."""
    found = {view.label: lookup(metrics, view.keys) for view in TEMPORAL_VIEWS}
    return {label: v for label, v in found.items() if v is not None}


def temporal_table(rows: list[tuple[str, str, str, dict, dict]]) -> str:
    labels = [v.label for v in TEMPORAL_VIEWS]
    head = ["| dataset | model | parameters | " + " | ".join(f"{label} HR@10 | {label} NDCG@10" for label in labels)
            + " | " + " | ".join(f"new items HR@10 ({label.split(', ')[-1]})" for label in NEW_ITEMS_VIEWS)
            + " | new items recall@10 (refit) | new-item users | training s | refit s |",
            "|---|---|---|" + "---:|" * (2 * len(labels) + len(NEW_ITEMS_VIEWS) + 4)]
    body = []
    for dataset, model, params, views, seconds in rows:
        cells = []
        for label in labels:
            m = views.get(label, {}).get("metrics", {})
            cells += [f"{m[metric]:.4f}" if metric in m else "–" for metric in ("hr@10", "ndcg@10")]
        new = {label: views.get(label, {}).get("slices", {}).get("new_items") for label in NEW_ITEMS_VIEWS}
        cells += [f"{n['hr@10']:.4f}" if n else "–" for n in new.values()]
        last = new[NEW_ITEMS_VIEWS[-1]] or {}
        cells += [f"{last['recall@10']:.4f}" if last else "–", f"{int(last.get('users', 0))}"]
        cells += [f"{seconds['train']:.1f}", f"{seconds['refit']:.1f}" if seconds["refit"] is not None else "–"]
        body.append(f"| {dataset} | {model} | {params} | " + " | ".join(cells) + " |")
    return "\n".join(head + body)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--datasets", nargs="+", default=["ml-1m", "beauty"])
    ap.add_argument("--models", nargs="+", default=["popularity", "itemknn", "ease", "als"])
    docs_option(ap, "--print-only", help="print the tables, leave docs/benchmarks.md")
    ap.add_argument("--keep-runs", type=Path, help="keep each run under this folder (for `deepshelf recommend`)")
    args = ap.parse_args()
    loo_rows, temporal_rows = [], []
    workdir = args.keep_runs or Path(tempfile.mkdtemp(prefix="deepshelf-quality-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        for dataset in args.datasets:
            for model in args.models:
                sets = PARAMS.get((dataset, model), [])
                cfg = build_train_config(dataset, model, None, sets)
                start = time.perf_counter()
                path = train_run(cfg, workdir / f"{model}-{dataset}")
                wall = time.perf_counter() - start
                m = json.loads((path / "metrics.json").read_text())
                params = " ".join(sets) or "defaults"
                if m["protocol"] == "temporal":
                    views = temporal_views(m)
                    seconds = {"train": m["train_seconds"], "refit": m.get("refit", {}).get("train_seconds")}
                    temporal_rows.append((dataset, model, params, views, seconds))
                    print(f"{dataset:14s} {model:10s} " + "  ".join(
                        f"{label}: HR@10 {v['metrics']['hr@10']:.4f} NDCG@10 {v['metrics']['ndcg@10']:.4f}"
                        for label, v in views.items()), flush=True)
                    continue
                t = m["test"]["metrics"]
                loo_rows.append((dataset, model, params, t["hr@10"], t["ndcg@10"], m["train_seconds"], wall))
                print(f"{dataset:8s} {model:10s} HR@10 {t['hr@10']:.4f} NDCG@10 {t['ndcg@10']:.4f} "
                      f"train {m['train_seconds']:.1f}s", flush=True)
    finally:
        if args.keep_runs is None:
            shutil.rmtree(workdir, ignore_errors=True)
    command = (f"Command: `python -m benchmarks.quality --datasets {' '.join(args.datasets)} --models "
               f"{' '.join(args.models)}`  \nMachine: {machine()}; measured {time.strftime('%Y-%m-%d')}.  \n")
    sections = []
    if loo_rows:
        table = ["| dataset | model | parameters | HR@10 | NDCG@10 | training s | train+eval s |",
                 "|---|---|---|---:|---:|---:|---:|"]
        table += [f"| {d} | {m} | {p} | {hr:.4f} | {nd:.4f} | {ts:.1f} | {w:.1f} |"
                  for d, m, p, hr, nd, ts, w in loo_rows]
        sections.append(("Classic models", command + "Protocol: leave-one-out, last item = test target, ranking "
                         "over all items, seen items excluded.\n\n" + "\n".join(table)))
    if temporal_rows:
        sections.append(("Online Retail: discovery and buy again", command + (
            "Protocol: temporal (last 30 days test, the 30 before validation), ranking over all items; discovery: "
            "targets are items new to the shopper, seen items excluded; buy again: every item bought in the period, "
            "seen items allowed. Each model is fit on the events before the validation period (epochs and any "
            "search chosen on validation) and scores validation and, \"stale\", the test period; then refit with "
            "the chosen settings on every event before the test period (\"refit\": what a run saves and serves). "
            "New items: only the test targets first sold in the test period (discovery view). Training s: the "
            "first fit; refit s: the refit.\n\n")
            + temporal_table(temporal_rows)))
    for title, body in sections:
        publish(body, args, title, shown=f"\n## {title}\n\n{body}")


if __name__ == "__main__":
    main()
