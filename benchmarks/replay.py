"""Replay (as served) on the bundled Online Retail year: the learned ranker and trending, the test month replayed
day by day through the serving engine, beside the frozen numbers; writes the "Replay (as served)" section of
docs/benchmarks.md.

    python -m benchmarks.replay                                  # trains both runs; passes frozen, none, 1 (daily)
    python -m benchmarks.replay --ranker-run R --trending-run T  # runs trained already (deepshelf train)
    python -m benchmarks.replay --passes frozen none 7 --results DIR [--reuse]   # each pass's JSON kept in DIR
    python -m benchmarks.replay --print-only

Each replay (deepshelf.apps.replay, what `deepshelf evaluate --protocol replay` runs) scores, for every day of
the test month, each shopper with a discovery target that day at the day's start, through `Service.recommend_user`
with the server's default rules; the engine's live trending (no run) is replayed beside the runs. Passes:
"frozen" (the store, so histories and trending, kept at the cut: the frozen protocol on replay's targets), "none"
(models frozen at the cut, histories and live counts up to each day), N (models refit every N days, on days with
new events, on every event before the day, with the run's chosen parameters). Beside them, each run's own
temporal-protocol test numbers (`metrics.json`: per shopper over the whole month, scored from the cut).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from benchmarks.lib.cli import docs_option, parser, publish
from benchmarks.lib.mdsection import machine
from deepshelf.apps.replay import ENGINE_TRENDING, replay_run
from deepshelf.runs.config import build_train_config
from deepshelf.runs.pipeline import train_run

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "ranker-online-retail.toml"
K = 10


def train(workdir: Path, say) -> tuple[Path, Path]:
    """The ranker (configs/ranker-online-retail.toml) and trending, trained as `deepshelf train` does."""
    out = []
    for name, model, config in (("ranker", None, CONFIG), ("trending", "trending", None)):
        cfg = build_train_config("online-retail" if config is None else None, model, config, [])
        cfg.content = False  # content indexes do not change these lists (no product is new to the runs)
        started = time.perf_counter()
        out.append(train_run(cfg, workdir / name, progress=say))
        say(f"trained {name} in {time.perf_counter() - started:.0f}s")
    return out[0], out[1]


def ranker_text(params: dict) -> str:
    """The ranker run's generators and learner, as its config.json records them."""
    gens = ", ".join(f"{g['model']} {g.get('top_n', '')}".strip() for g in params.get("generators", []))
    rest = {k: v for k, v in params.items() if k != "generators"}
    return f"generators {gens}; " + ", ".join(f"{k} = {v}" for k, v in rest.items())


def label_of(spec: str) -> str:
    return {"frozen": "frozen", "none": "none"}.get(spec, f"{spec} d")


def rows_of(label: str, results: dict) -> list[str]:
    rows = []
    for name, r in results["contenders"].items():
        if name == ENGINE_TRENDING and label not in ("frozen", "none"):
            continue  # the same lists as in the "none" pass: it has no model to refit
        m, s = r["metrics"], r["slices"]
        new, today = s.get("new_items", {}), s.get("new_today", {})
        cadence = "store frozen at the cut" if label == "frozen" else (
            "live store" if name == ENGINE_TRENDING else
            "live store, model frozen at the cut" if label == "none" else f"live store, model refit every {label}")
        if name.endswith("(as fit)"):
            cadence += ", scoring as fit (sales since the fit not followed)"
        refit = f"{r['refits']} in {r['refit_seconds']:.0f}s" if r["refits"] else "-"
        rows.append(f"| {name} | {cadence} | {r['pairs']:,} | {m[f'ndcg@{K}']:.4f} | {m[f'hr@{K}']:.4f} | "
                    f"{m[f'recall@{K}']:.4f} | {r['per_shopper'][f'ndcg@{K}']:.4f} | "
                    f"{new.get(f'hr@{K}', 0.0):.4f} ({new.get('pairs', 0)}) | "
                    f"{new.get(f'recall@{K}', 0.0):.4f} | {today.get(f'hr@{K}', 0.0):.4f} ({today.get('pairs', 0)}) | "
                    f"{r['request_ms']:.1f} | {refit} |")
    return rows


def frozen_rows(results: dict) -> list[str]:
    rows = []
    for name, r in results["contenders"].items():
        fp = r.get("frozen_protocol")
        if fp:
            rows.append(f"| {name} | temporal protocol (metrics.json: per shopper, whole month, from the cut) | "
                        f"{int(fp.get('users', 0)) or '-'} | {fp[f'ndcg@{K}']:.4f} | {fp[f'hr@{K}']:.4f} | "
                        f"{fp[f'recall@{K}']:.4f} | - | {fp.get(f'new_items/hr@{K}', 0.0):.4f} "
                        f"({int(fp.get('new_items/users', 0))}) | {fp.get(f'new_items/recall@{K}', 0.0):.4f} | "
                        "- | - | - |")
    return rows


def week_rows(label: str, results: dict) -> list[str]:
    rows = []
    for name, r in results["contenders"].items():
        if name == ENGINE_TRENDING and label not in ("frozen", "none"):
            continue
        for w in r["weeks"]:
            new = w.get("new_items", {})
            rows.append(f"| {name} | {label} | {w['week']} | {w['from']} to {w['to']} | {w['pairs']:,} | "
                        f"{w[f'ndcg@{K}']:.4f} | {w[f'hr@{K}']:.4f} | {new.get(f'hr@{K}', 0.0):.4f} "
                        f"({new.get('pairs', 0)}) |")
    return rows


def ratio_lines(passes: dict[str, dict]) -> list[str]:
    """The ranker against each trending, per pass (computed from the table's numbers)."""
    out = []
    none = passes.get("none", {}).get("contenders", {})
    for spec, results in passes.items():
        c = dict(results["contenders"])
        if spec not in ("frozen", "none") and ENGINE_TRENDING in none:
            c[ENGINE_TRENDING] = none[ENGINE_TRENDING]  # its lists do not depend on a refit cadence
        ranker = c.get(next(iter(c)))  # the replayed run comes first
        parts = []
        for name, other in c.items():
            if other is ranker:
                continue
            a, b = ranker["metrics"][f"ndcg@{K}"], other["metrics"][f"ndcg@{K}"]
            h, g = ranker["metrics"][f"hr@{K}"], other["metrics"][f"hr@{K}"]
            parts.append(f"{a / b:.2f}x {name}'s NDCG@{K}, {h / g:.2f}x its HR@{K}" if b and g else f"{name}: -")
        out.append(f"- {label_of(spec)}: the ranker scores " + "; ".join(parts) + ".")
    return ["Ranker against the trending lists, per pass (same pairs, same targets):", "", *out]


def code_version() -> str:
    """The commit the code ran from (DEEPSHELF_CODE_VERSION when set, e.g. for a snapshot without git), and
    whether src/ or configs/ had uncommitted changes."""
    import os
    import subprocess

    if os.environ.get("DEEPSHELF_CODE_VERSION"):
        return os.environ["DEEPSHELF_CODE_VERSION"]
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=30, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src", "configs"],
                               capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (" with uncommitted changes in src/ or configs/" if dirty else "")


def daily_note(passes: dict[str, dict]) -> list[str]:
    """Without a daily pass: what one would cost, from a refit pass's measured ranker refits."""
    if "1" in passes:
        return []
    refitted = [(spec, r) for spec, r in passes.items() if spec not in ("frozen", "none")]
    if not refitted:
        return ["", "No refit cadence replayed in this run."]
    spec, r = refitted[0]
    ranker = next(iter(r["contenders"].values()))
    if not ranker["refits"]:
        return []
    each = ranker["refit_seconds"] / ranker["refits"]
    days = r["days"] - 1  # a refit on every day after the cut (days without events excepted)
    return ["", f"Daily refit (`--passes 1`) not in this table: the {label_of(spec)} pass's ranker refits took "
                f"{each:.0f}s each on this shared machine, so refitting daily (once per day with new events, up "
                f"to {days}) would add up to ~{days * each / 60:.0f} min; the longer cadence stands in for it here."]


def run_pass(spec: str, ranker: Path, trending: Path, workdir: Path, say, as_fit: bool = False) -> dict:
    frozen, refit_days = spec == "frozen", None if spec in ("frozen", "none") else int(spec)
    say(f"replay: {label_of(spec)}")
    results = replay_run(ranker, workdir / f"replay-{spec}", refit_days=refit_days, frozen=frozen,
                         baselines=[trending], ks=(K, 20), progress=say, as_fit=as_fit and not frozen)
    results["measured"] = time.strftime("%Y-%m-%d %H:%M")
    results["machine"] = machine()
    results["ranker_params"] = json.loads((Path(ranker) / "config.json").read_text())["params"]
    results["code"] = code_version()
    say(f"replay {label_of(spec)}: {results['seconds']:.0f}s")
    return results


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--ranker-run", type=Path, help="a trained ranker run (default: trained here)")
    ap.add_argument("--trending-run", type=Path, help="a trained trending run (default: trained here)")
    ap.add_argument("--passes", nargs="+", default=["frozen", "none", "1"],
                    help="frozen (store at the cut), none (models frozen at the cut, store live), N (models refit "
                         "every N days)")
    ap.add_argument("--as-fit", action="store_true",
                    help="beside the ranker, the same run scoring as fit between refits (DEEPSHELF_FOLLOW_SALES=false)")
    ap.add_argument("--results", type=Path, help="folder for each pass's JSON (replay-<pass>.json)")
    ap.add_argument("--reuse", action="store_true", help="read the passes whose JSON is in --results already "
                                                         "instead of replaying them again")
    docs_option(ap, "--print-only")
    args = ap.parse_args()
    for spec in args.passes:
        if spec not in ("frozen", "none") and not (spec.isdigit() and int(spec) > 0):
            ap.error(f"--passes {spec!r}: expected frozen, none or a number of days")
    say = lambda msg: print(msg, flush=True)  # noqa: E731
    given = " --ranker-run RANKER --trending-run TRENDING" if args.ranker_run and args.trending_run else ""
    command = "python -m benchmarks.replay" + given + ("" if args.passes == ["frozen", "none", "1"] else
                                                       " --passes " + " ".join(args.passes)) + \
        (" --as-fit" if args.as_fit else "")
    passes: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="deepshelf-replay-bench-") as tmp:
        workdir = Path(tmp)
        ranker, trending = args.ranker_run, args.trending_run
        for spec in args.passes:
            saved = args.results / f"replay-{spec}.json" if args.results else None
            if args.reuse and saved is not None and saved.exists():
                passes[spec] = json.loads(saved.read_text())
                continue
            if ranker is None or trending is None:
                ranker, trending = train(workdir / "runs", say)
            passes[spec] = run_pass(spec, ranker, trending, workdir, say, args.as_fit)
            if saved is not None:
                saved.parent.mkdir(parents=True, exist_ok=True)
                saved.write_text(json.dumps(passes[spec], indent=2))
    first = next(iter(passes.values()))
    when = "; ".join(f"{label_of(spec)}: {r['measured']}, {r['seconds']:.0f}s" for spec, r in passes.items())
    code = "; ".join(sorted({r.get("code", "unknown") for r in passes.values()}))
    lines = [
        f"Command: `{command}`  ",
        *([f"Runs: trained beforehand with `deepshelf train --config configs/ranker-online-retail.toml --no-content` "
           "and `deepshelf train --dataset online-retail --model trending --no-content` (the parameters below are "
           "the ranker run's config.json).  "] if given else []),
        f"Machine: {first['machine']}, shared with other work while measured (passes measured, and how long each "
        f"took, ranker refits included: {when}); code: {code}.  ",
        f"Data: online-retail, test month {first['cut']} to {first['end']} ({first['days']} days, from the temporal "
        "protocol's test cut), runs `configs/ranker-online-retail.toml` (`ranker`: "
        f"{ranker_text(first['ranker_params'])}) and `--model trending` (`trending`, the \"fresh trending\" of the "
        "table above), both refit on every event before the cut as `deepshelf train` saves them.",
        "",
        "How it is scored (`deepshelf evaluate --run RUN --protocol replay [--refit-days N] [--frozen]`, "
        "`deepshelf.apps.replay`): for each day of the test month (day 0 from the cut to midnight UTC, then "
        "calendar days), every shopper with a discovery target that day (an item they buy that day and had no "
        "event on before it) asks the serving engine (`Service.recommend_user`, the server's default rules: seen "
        "and bought items excluded, one new-item slot, the newest 200 events as history) for 10 items at the "
        "day's start; the engine reads a SQLite store holding every event before that day, and its live trending "
        "(`compute_trending`, the last 7 days) is computed with the clock at the day's start; the ranker follows "
        "the sales stored since its fit up to the day's start (`engine/live_sales.py`; a row \"(as fit)\" is the "
        "same run with `DEEPSHELF_FOLLOW_SALES=false`, scoring as fit between refits). Then the day's "
        "events are stored; with a refit cadence the run's model is refit (its chosen parameters) on every event "
        "before the day and swapped in. Metrics per (shopper, day) pair, averaged over pairs; \"per shopper\" "
        "averages each shopper's pairs first. New products: targets never sold before the cut (the frozen "
        "protocol's slice); new today: targets nobody had bought before that day (nothing built from sales can "
        "know them). `trending (engine, live)` is what the engine serves without a model: the live trending "
        "list, refreshed every day; a shopper without any history gets that list from every run too. ms per "
        "list: the engine call on this shared machine (ranker: its generators and learner for one shopper, and "
        "the explanation). The temporal protocol's rows count a shopper once with every item new to them in the "
        "whole month as targets of one list, so they sit higher than any per-day number: compare the replay "
        "passes with each other, and each with its `frozen` pass.",
        "",
        f"| list source | cadence | pairs (users) | NDCG@{K} | HR@{K} | recall@{K} | per shopper NDCG@{K} | "
        f"new products HR@{K} (pairs) | new products recall@{K} | new today HR@{K} (pairs) | ms per list | refits |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for spec, results in passes.items():
        lines += rows_of(label_of(spec), results)
    lines += frozen_rows(first)
    lines += ["", *ratio_lines(passes), *daily_note(passes)]
    lines += ["", "Per week of the replay (days 0-6, 7-13, ...; the dates are the first and last day with pairs):",
              "", f"| list source | refit | week | days | pairs | NDCG@{K} | HR@{K} | new products HR@{K} (pairs) |",
              "|---|---|---:|---|---:|---:|---:|---:|"]
    for spec, results in passes.items():
        if spec != "frozen":
            lines += week_rows(label_of(spec), results)
    publish("\n".join(lines), args, "Replay (as served)")


if __name__ == "__main__":
    main()
