"""Summarise SASRec recipe sweeps trained side by side on one GPU, and write the "SASRec on a GPU" section of
docs/benchmarks.md.

    python -m benchmarks.gpu_sweep benchmarks/results/sasrec-gpu-2026-11-28/sweep-1 \
        benchmarks/results/sasrec-gpu-2026-11-28/sweep-2

A sweep folder holds `sweep.json` (machine, torch, code and config commits, how many runs shared the GPU, the
time limit, each run's config file and `--set` overrides), its part of the script that launched it (`runs.sh`: the
time limit and the runs, read by the `launch.sh` beside the sweep folders, which first unpacks the Python packages
the GPU machine lacked) and, per run, the run folder's `config.json` and `metrics.json` (weights left out). The
times are the training loop's own wall clock (`elapsed` in the training log: training and validation, not data
loading), measured while all the sweep's runs shared the one GPU, so they are upper bounds for a run alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.lib.cli import docs_option, parser, publish
from benchmarks.lib.traininglog import best_validated, first_reaching

THRESHOLDS = {"ml-1m": (0.17, 0.175, 0.18), "beauty": (0.06, 0.065)}


def first_at(log: list[dict], level: float) -> str:
    hit = first_reaching(log, level)
    return "-" if hit is None else f"{hit['elapsed']:.0f} ({hit['epoch']})"


def best_cell(log: list[dict]) -> str:
    best = best_validated(log)
    return "-" if best is None else f"{best['valid_ndcg@10']:.4f} ({best['epoch']})"


def load_sweep(folder: Path) -> tuple[dict, dict[str, tuple[dict, dict]]]:
    """sweep.json, and each run's (metrics.json, config params) by run name."""
    meta = json.loads((folder / "sweep.json").read_text())
    runs = {name: (json.loads((folder / name / "metrics.json").read_text()),
                   json.loads((folder / name / "config.json").read_text())["params"]) for name in meta["runs"]}
    return meta, runs


def sweep_table(folder: Path, meta: dict, runs: dict[str, tuple[dict, dict]]) -> list[str]:
    lines = [f"### {folder.name}", "",
             f"{meta['machine']}, torch {meta['torch']}; {meta['concurrent_runs']} runs at once on the one GPU, "
             f"each under `time_limit = {meta['time_limit_minutes']}` minutes; all done in "
             f"{meta['wall_seconds_all_runs']:.0f} s. Code: commit {meta['code_at']}; config files as of commit "
             f"{meta['configs_at']}; "
             f"launched by `{folder.parent}/launch.sh {folder}/runs.sh`.", ""]
    for dataset, levels in THRESHOLDS.items():
        names = [n for n, r in meta["runs"].items() if f"sasrec-{dataset}" in r["config"]]
        if not names:
            continue
        lines += [f"`{dataset}`:", "",
                  "| run | overrides | epochs run / set | s / epoch (median) | best valid NDCG@10 (epoch) | "
                  + " | ".join(f"s to valid >= {v} (epoch)" for v in levels) + " | test HR@10 | test NDCG@10 |",
                  "|---|---|---:|---:|---:|" + "---:|" * len(levels) + "---:|---:|"]
        for name in names:
            m, params = runs[name]
            log = m["training"]
            test = m["test"]["metrics"]
            lines.append(f"| {name} | {' '.join(meta['runs'][name]['set']) or '-'} | {len(log)} / {params['epochs']} | "
                         f"{np.median([e['seconds'] for e in log]):.2f} | {best_cell(log)} | "
                         + " | ".join(first_at(log, v) for v in levels)
                         + f" | {test['hr@10']:.4f} | {test['ndcg@10']:.4f} |")
        lines.append("")
    return lines


def headline(sweeps: dict[Path, tuple[dict, dict]], level: float) -> str:
    """The issue's GPU number: the first ml-1m run to reach `level`, or the best any run reached."""
    found = []  # (elapsed to level or None, best validation entry, sweep/run)
    for folder, (meta, runs) in sweeps.items():
        for name, r in meta["runs"].items():
            log = runs[name][0]["training"]
            best = best_validated(log)
            if "sasrec-ml-1m" in r["config"] and best is not None:
                hit = first_reaching(log, level)
                found.append((hit["elapsed"] if hit else None, hit or best, f"{folder.name}/{name}"))
    if not found:
        return "No validated ml-1m run in these sweeps."
    reached = sorted((f for f in found if f[0] is not None), key=lambda f: f[0])
    if reached:
        t, entry, name = reached[0]
        return f"{name} reached {level} after {t:.0f} s (epoch {entry['epoch']}), sharing the GPU as above."
    _, best, name = max(found, key=lambda f: f[1]["valid_ndcg@10"])
    return (f"Not reached: none of the {len(found)} ml-1m runs got to {level}; the best, {name}, reached "
            f"{best['valid_ndcg@10']:.4f} (epoch {best['epoch']}).")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("sweeps", nargs="+", type=Path, help="sweep folders (sweep.json + one folder per run)")
    docs_option(ap, help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    lines = [f"Command: `python -m benchmarks.gpu_sweep {' '.join(map(str, args.sweeps))}`  ",
             "Each run: `deepshelf train --config CONFIG --set device=cuda --set time_limit=LIMIT --set OVERRIDES`; "
             "bf16 autocast, as the configs ask. Times are the training loop's wall clock (training and "
             "validation every 2 epochs, not data loading) while all of a sweep's runs shared the GPU: upper "
             "bounds for a run alone. Test metrics: leave-one-out, full ranking, seen items excluded. Each "
             "sweep's launch script is kept as it ran, from the repository root's `.dev/` folder (not committed), "
             "beside the Python packages the GPU machine lacked and the data files: the `launch.sh` the sweeps "
             "share, given the sweep's `runs.sh` (its time limit and runs).", ""]
    sweeps = {folder: load_sweep(folder) for folder in args.sweeps}
    for folder, (meta, runs) in sweeps.items():
        lines += sweep_table(folder, meta, runs)
    level = THRESHOLDS["ml-1m"][-1]
    lines += [f"### Wall time to validation NDCG@10 >= {level} on ml-1m", "", headline(sweeps, level), ""]
    publish("\n".join(lines), args, "SASRec on a GPU")


if __name__ == "__main__":
    main()
