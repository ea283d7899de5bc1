"""A shopper simulator: a population with known tastes shops on a deepshelf server inside online experiments.

The shop is planted: `groups` product groups of `items_per_group` items; each shopper likes one group (their
known taste). Training shoppers touch items of their group (popular ones more often); the simulated shoppers are
new, held out of training, and arrive with three views of their group. On each visit a shopper asks for
"recommended for you" (k=10, placement home) and clicks each shown item with probability `p_base` (not their
group) or `p_base + p_relevant` (their group): the click probability grows with how relevant the item truly is.
A clicked item is bought with probability `p_buy`. Clicks and purchases are posted as events carrying the list's
`recommendation_id`, so the server's impressions and attribution count them, and the experiment's verdict is
read back from GET /v1/experiments/{name}, as a shop would.

The server is the real application (`create_app`: routes, experiment registry, impression writer, SQLite store)
driven in-process through FastAPI's TestClient, not over a socket: the numbers are about the experiment, not
about HTTP speed (benchmarks/serve_load.py measures that).

Three experiments:
1. popularity vs EASE, 50/50 fixed: the verdict is checked every `check_every` list requests; how many requests
   it took to name the winner (and which) is reported.
2. the same two with thompson allocation: EASE's share of traffic over time, plotted (docs/img/thompson_share.png).
3. A/A (EASE twice), fixed, `aa_repeats` times with `aa_requests` list requests each, the verdict read once at the
   end: how many named a winner (the verdict's alpha is experiment_alpha, 0.01).

    python -m benchmarks.simulate_shoppers            # writes the "Shopper simulator" section of docs/benchmarks.md
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.lib import ROOT
from benchmarks.lib.cli import docs_option, parser, publish
from benchmarks.lib.mdsection import machine

KEY = "simulator-key"


def plant_shop(folder: Path, groups: int, per_group: int, shoppers: int, seed: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, per_group + 1) ** 0.8  # popular items within a group
    p /= p.sum()
    rows, t0 = [], 1_700_000_000
    for u in range(shoppers):
        g = u % groups
        for j, i in enumerate(rng.choice(per_group, size=12, replace=False, p=p)):
            rows.append((f"train{u}", f"i{g * per_group + i}", "purchase" if j % 4 == 0 else "view",
                         t0 + len(rows) * 60))
    # group sizes differ, so popularity favours some groups over others (as in a real shop)
    for u in range(shoppers // 2):
        for i in rng.choice(per_group, size=6, replace=False, p=p):
            rows.append((f"extra{u}", f"i{i}", "view", t0 + len(rows) * 60))
    events = folder / "events.csv"
    pl.DataFrame(rows, schema=["user", "item", "type", "timestamp"], orient="row").write_csv(events)
    n = groups * per_group
    catalog = folder / "catalog.csv"
    pl.DataFrame({"item": [f"i{i}" for i in range(n)], "title": [f"Product {i}" for i in range(n)],
                  "category": [f"group{i // per_group}" for i in range(n)],
                  "price": [float(5 + i % 40) for i in range(n)]}).write_csv(catalog)
    return events, catalog


def shop_options(ap) -> None:
    """The planted shop's and the simulated shoppers' options (this simulator's and simulate_exploration's)."""
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--items-per-group", type=int, default=40)
    ap.add_argument("--train-shoppers", type=int, default=1600)
    ap.add_argument("--shoppers", type=int, default=400)
    ap.add_argument("--p-base", type=float, default=0.005)
    ap.add_argument("--p-relevant", type=float, default=0.02)
    ap.add_argument("--p-buy", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)


def open_shop(folder: Path, catalog: Path) -> str:
    """A SQLite store in `folder` holding the catalogue: its database URL."""
    from deepshelf.storage import items_from_table, open_store

    database = f"sqlite:///{folder / 'store.db'}"
    store = open_store(database)
    store.upsert_items(items_from_table(pl.read_csv(catalog)))
    store.close()
    return database


def train(events: Path, catalog: Path, out: Path, model: str) -> Path:
    from deepshelf.runs.config import TrainConfig
    from deepshelf.runs.pipeline import train_run

    return train_run(TrainConfig(dataset=str(events), catalog=str(catalog), model=model,
                                 protocol="leave-one-out"), out)


class Population:
    """Shoppers with a known group, their clicks and purchases on what the server shows them."""

    def __init__(self, args, rng: np.random.Generator, prefix: str):
        self.args, self.rng = args, rng
        self.ids = [f"{prefix}{u}" for u in range(args.shoppers)]
        self.group = {s: int(rng.integers(args.groups)) for s in self.ids}

    def arrive(self, c) -> None:
        """Each shopper's three views of their group (what the server knows of them before the first visit)."""
        a, events = self.args, []
        for s in self.ids:
            for i in self.rng.choice(a.items_per_group, size=3, replace=False):
                events.append({"user_id": s, "item_id": f"i{self.group[s] * a.items_per_group + i}", "type": "view"})
        for start in range(0, len(events), 900):
            c.post("/v1/events", json={"events": events[start:start + 900]}).raise_for_status()

    def visit(self, c) -> str | None:
        """One list request and the shopper's reaction; returns the variant that served it."""
        a = self.args
        s = self.ids[int(self.rng.integers(len(self.ids)))]
        r = c.get(f"/v1/users/{s}/recommendations", params={"k": 10, "placement": "home"})
        r.raise_for_status()
        answer = r.json()
        events = []
        for it in answer["items"]:
            relevant = int(it["item_id"][1:]) // a.items_per_group == self.group[s]
            if self.rng.random() < a.p_base + a.p_relevant * relevant:
                events.append({"user_id": s, "item_id": it["item_id"], "type": "view",
                               "recommendation_id": answer["recommendation_id"]})
                if self.rng.random() < a.p_buy:
                    events.append({"user_id": s, "item_id": it["item_id"], "type": "purchase", "value": 20.0})
        if events:
            c.post("/v1/events", json={"events": events}).raise_for_status()
        return answer.get("variant")


def define(c, name: str, runs: list[tuple[str, Path]], allocation: str) -> None:
    body = {"placement": "home", "allocation": allocation,
            "variants": [{"name": v, "run": str(run), "share": 1 / len(runs)} for v, run in runs]}
    r = c.put(f"/v1/experiments/{name}", json=body)
    r.raise_for_status()


def results(c, name: str) -> dict:
    time.sleep(0.6)  # the impression writer stores what it holds every impression_flush_s (0.5 s)
    r = c.get(f"/v1/experiments/{name}")
    r.raise_for_status()
    return r.json()


def ab_fixed(c, pop: Population, runs, args) -> dict:
    define(c, "ab", runs, "fixed")
    for n in range(1, args.max_requests + 1):
        pop.visit(c)
        if n % args.check_every == 0:
            out = results(c, "ab")
            if out["verdict"]["winner"] is not None:
                break
    c.delete("/v1/experiments/ab").raise_for_status()
    return {"requests": n, **out}


def thompson(c, pop: Population, runs, args) -> tuple[list, dict]:
    define(c, "ts", runs, "thompson")
    curve = []  # (requests so far, strong variant's share of the last window's requests, its traffic_share)
    served = []
    for n in range(1, args.thompson_requests + 1):
        served.append(pop.visit(c))
        if n % args.check_every == 0:
            window = served[-args.check_every:]
            out = results(c, "ts")
            share = {v["name"]: v["traffic_share"] for v in out["variants"]}["ease"]
            curve.append((n, window.count("ease") / len(window), share))
    c.delete("/v1/experiments/ts").raise_for_status()
    return curve, out


def a_a(c, pop: Population, strong: Path, args) -> list[dict]:
    verdicts = []
    for r in range(args.aa_repeats):
        name = f"aa{r}"
        define(c, name, [("a", strong), ("b", strong)], "fixed")
        for _ in range(args.aa_requests):
            pop.visit(c)
        verdicts.append(results(c, name))
        c.delete(f"/v1/experiments/{name}").raise_for_status()
    return verdicts


def plot(curve: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, observed, share = zip(*curve)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(n, observed, marker=".", label="EASE's share of the last requests")
    ax.plot(n, share, linestyle="--", label="EASE's traffic share (probability best)")
    ax.set_xlabel("list requests")
    ax.set_ylabel("share")
    ax.set_ylim(0, 1.02)
    ax.axhline(0.5, color="grey", linewidth=0.5)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Thompson allocation: popularity vs EASE")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = parser(__doc__)
    shop_options(ap)
    ap.add_argument("--check-every", type=int, default=50)
    ap.add_argument("--max-requests", type=int, default=4000)
    ap.add_argument("--thompson-requests", type=int, default=3000)
    ap.add_argument("--aa-repeats", type=int, default=20)
    ap.add_argument("--aa-requests", type=int, default=400)
    docs_option(ap, help="print, do not write docs/benchmarks.md")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app
    from deepshelf.engine.settings import Settings

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        events, catalog = plant_shop(folder, args.groups, args.items_per_group, args.train_shoppers, args.seed)
        t0 = time.perf_counter()
        weak, strong = train(events, catalog, folder / "pop", "popularity"), train(events, catalog, folder / "ease",
                                                                                  "ease")
        train_s = time.perf_counter() - t0
        database = open_shop(folder, catalog)
        settings = Settings(run=weak, database=database, api_keys=KEY, watch_run=False, experiment_refresh_s=1.0,
                            sqlite_synchronous="NORMAL")
        with TestClient(create_app(settings), headers={"X-API-Key": KEY}) as c:
            pop = Population(args, rng, "s")
            pop.arrive(c)
            t0 = time.perf_counter()
            ab = ab_fixed(c, pop, [("popularity", weak), ("ease", strong)], args)
            later = Population(args, rng, "t")
            later.arrive(c)
            curve, ts = thompson(c, later, [("popularity", weak), ("ease", strong)], args)
            aa = a_a(c, pop, strong, args)
            sim_s = time.perf_counter() - t0
    image = ROOT / "docs" / "img" / "thompson_share.png"
    plot(curve, image)
    body = report(args, ab, curve, ts, aa, train_s, sim_s, image)
    publish(body + f"\n\nMachine: {machine()}.", args, "Shopper simulator", shown=body)


def report(args, ab, curve, ts, aa, train_s, sim_s, image: Path) -> str:
    def rows(out: dict) -> str:
        return "\n".join(f"| {v['name']} | {v['impressions']} | {v['clicks']} | {v['ctr']:.4f} "
                         f"[{v['ctr_low']:.4f}, {v['ctr_high']:.4f}] | {v['conversions']} | {v['revenue']:.0f} |"
                         for v in out["variants"])

    head = "| variant | impressions | clicks | CTR [95% CI] | conversions | revenue |\n|---|---|---|---|---|---|"
    v = ab["verdict"]
    winners = sum(out["verdict"]["winner"] is not None for out in aa)
    first = next((n for n, _, share in curve if share >= 0.9), None)
    return f"""`benchmarks/simulate_shoppers.py` (in-process server, SQLite store; planted shop of {args.groups} groups x
{args.items_per_group} items; {args.train_shoppers} training shoppers; simulated shoppers held out of training, each
liking one group: click probability {args.p_base:g} per shown item, {args.p_base + args.p_relevant:g} for one of
their group, purchase of a clicked item {args.p_buy}). Runs trained in {train_s:.0f} s; the simulation took {sim_s:.0f} s.

**Popularity vs EASE, 50/50 fixed.** Verdict checked every {args.check_every} list requests: winner
**{v['winner']}** after **{ab['requests']} list requests** ({v['method']}, p = {v['p_value']:.2g}).

{head}
{rows(ab)}

**Thompson allocation** ({args.thompson_requests} list requests): EASE's traffic share reached 0.9 after
{first if first is not None else 'more than ' + str(args.thompson_requests)} requests; verdict at the end:
{ts['verdict']['winner']} (probability best {ts['verdict']['probability_best']}).

![EASE's share of traffic under Thompson allocation](img/{image.name})

{head}
{rows(ts)}

**A/A (EASE twice), fixed 50/50**, {args.aa_repeats} experiments of {args.aa_requests} list requests, verdict read
once at the end: a winner in {winners} of {args.aa_repeats} (no winner in {100 * (1 - winners / len(aa)):.0f}%;
the verdict's alpha is 0.01). tests/api/test_experiments.py repeats the A/A on 300 synthetic count pairs per
allocation: no winner in >= 95% is asserted there."""


if __name__ == "__main__":
    main()
