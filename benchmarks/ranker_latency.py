"""Latency of the ranker stage for one shopper: features + learner over at most 300 candidates.

    .venv/bin/python -m benchmarks.ranker_latency                      # each learner, 300 shoppers each
    .venv/bin/python -m benchmarks.ranker_latency --learners lightgbm --shoppers 1000
    .venv/bin/python -m benchmarks.ranker_latency --config configs/ranker-online-retail.toml --set session=none

The ranker is fit on the bundled Online Retail year (events before the test period) with its default generators
(their top-N lists sum to 300, so the union is at most 300 candidates), or a config file's parameters
(`--config`, `--set` overrides; `--learners` still names the learner); then, for test shoppers one at a time, the candidates are generated
(untimed, stage 1) and the ranker stage is timed: building the features and scoring them. The end-to-end
`score()` of one shopper (both stages) is timed too. The machine's own noise is probed before and after
(`jitter_probe` from lib/noise.py): a p99 can be no steadier than the machine under it.
"""

from __future__ import annotations

import logging
import os
import time
import tomllib
from pathlib import Path

import numpy as np

from benchmarks.lib.cli import apply_sets, parser
from benchmarks.lib.mdsection import machine
from benchmarks.lib.noise import jitter_probe, probe_text


def timed(fn, n: int) -> np.ndarray:
    ms = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        ms.append((time.perf_counter() - t) * 1000)
    return np.array(ms)


def main() -> None:
    from deepshelf.data.datasets import load_dataset
    from deepshelf.data.splits import temporal
    from deepshelf.models.ranker.features import build_features
    from deepshelf.models.ranker.model import Ranker

    ap = parser(__doc__, whole=True)
    ap.add_argument("--learners", default="lightgbm,torch,ensemble")
    ap.add_argument("--shoppers", type=int, default=300)
    ap.add_argument("--jitter-seconds", type=float, default=10.0)
    ap.add_argument("--config", type=Path, default=None, help="a ranker config file (default: the code's defaults)")
    ap.add_argument("--set", action="append", default=[], help="ranker parameter override key=value")
    args = ap.parse_args()

    params = tomllib.loads(args.config.read_text()).get("params", {}) if args.config else {}
    params = apply_sets(params, args.set)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    torch.set_num_threads(1)  # one request, one thread: as the service scores

    jitter = jitter_probe(args.jitter_seconds)
    ds = load_dataset("online-retail")
    inter = ds.interactions
    split = temporal(inter, 30, 30)
    before_test = inter.subset(inter.timestamp < int(inter.timestamp.max()) - 30 * 86400)
    shoppers = split.test.inputs.select(np.arange(min(args.shoppers, len(split.test))))
    rows = []
    for learner in args.learners.split(","):
        model = Ranker(**{**params, "learner": learner}).fit(before_test, ds.catalog_as_of(split.test_cut))
        singles = [shoppers.select([b]) for b in range(len(shoppers))]
        cands = [model.generators.candidates(h, model.n_items) for h in singles]
        sizes = np.array([len(c) for c in cands])

        def stage2(i):
            X = build_features(singles[i], cands[i], model.stats, model.copurchase, model.text_vectors,
                               model.config.time_features)
            model.candidate_scores(cands[i], X)

        stage2(0)  # warm-up: first-call allocations
        ranker_ms = timed(stage2, len(singles))
        full_ms = timed(lambda i: model.score(singles[i]), len(singles))
        rows.append((learner, sizes, ranker_ms, full_ms))
    after = jitter_probe(args.jitter_seconds)

    print(f"\nRanker stage latency, one shopper per call, Online Retail test shoppers. Machine: {machine()}, "
          f"load average {os.getloadavg()[0]:.1f}. Ranker params: "
          f"{({k: v for k, v in params.items() if k != 'learner'}) or 'the code defaults'} (learner: each row's).")
    for when, probe in (("before", jitter), ("after", after)):
        print(f"Machine noise {when} (fixed work): {probe_text(probe)}.")
    print()
    print("| learner | shoppers | candidates (median / max) | ranker stage median / p99 ms | "
          "both stages (score) median / p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for learner, sizes, r, f in rows:
        print(f"| {learner} | {len(sizes)} | {np.median(sizes):.0f} / {sizes.max()} | "
              f"{np.median(r):.2f} / {np.percentile(r, 99):.2f} | {np.median(f):.2f} / {np.percentile(f, 99):.2f} |")


if __name__ == "__main__":
    main()
