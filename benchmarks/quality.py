"""Quality of the classic models on ml-1m and beauty (leave-one-out, full ranking, seen items excluded).

    python benchmarks/quality.py [--datasets ml-1m beauty] [--models popularity itemknn ease als]

Trains each model through `deepshelf.runs.pipeline.train_run` (the path `deepshelf train` takes), so the numbers are
the ones `metrics.json` records, and writes the table to docs/benchmarks.md ("Classic models").
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mdsection import machine, write_section  # noqa: E402

from deepshelf.runs.config import build_train_config  # noqa: E402
from deepshelf.runs.pipeline import train_run  # noqa: E402

# Per-dataset parameters, fixed before the run (never chosen on the test split).
PARAMS = {
    ("ml-1m", "ease"): ["l2=500"],
    ("beauty", "ease"): ["l2=100"],
    ("ml-1m", "als"): ["factors=64", "iterations=15"],
    ("beauty", "als"): ["factors=64", "iterations=15"],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["ml-1m", "beauty"])
    parser.add_argument("--models", nargs="+", default=["popularity", "itemknn", "ease", "als"])
    args = parser.parse_args()
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="deepshelf-quality-"))
    try:
        for dataset in args.datasets:
            for model in args.models:
                sets = PARAMS.get((dataset, model), [])
                cfg = build_train_config(dataset, model, None, sets)
                start = time.perf_counter()
                path = train_run(cfg, workdir / f"{model}-{dataset}")
                wall = time.perf_counter() - start
                m = json.loads((path / "metrics.json").read_text())
                t = m["test"]["metrics"]
                rows.append((dataset, model, " ".join(sets) or "defaults", t["hr@10"], t["ndcg@10"],
                             m["train_seconds"], wall))
                print(f"{dataset:8s} {model:10s} HR@10 {t['hr@10']:.4f} NDCG@10 {t['ndcg@10']:.4f} "
                      f"train {m['train_seconds']:.1f}s", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    table = ["| dataset | model | parameters | HR@10 | NDCG@10 | training s | train+eval s |",
             "|---|---|---|---:|---:|---:|---:|"]
    table += [f"| {d} | {m} | {p} | {hr:.4f} | {nd:.4f} | {ts:.1f} | {w:.1f} |" for d, m, p, hr, nd, ts, w in rows]
    body = (f"Command: `python benchmarks/quality.py --datasets {' '.join(args.datasets)} --models "
            f"{' '.join(args.models)}`  \nMachine: {machine()}; measured {time.strftime('%Y-%m-%d')}.  \n"
            "Protocol: leave-one-out, last item = test target, ranking over all items, seen items excluded.\n\n"
            + "\n".join(table))
    write_section("Classic models", body)


if __name__ == "__main__":
    main()
