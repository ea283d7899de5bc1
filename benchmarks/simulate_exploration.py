"""The exploration share for new products, measured with simulated shoppers (issue 25): what `new_slots` costs and
buys a shop whose new products are as good as its old ones.

The planted shop of benchmarks/simulate_shoppers.py (groups of products; each shopper likes one group), with
product titles that name their group's theme, trained as EASE with content indexes (the run's text vectors). Then
`new_per_group` products per group are added through `POST /v1/items` after training (the run never saw them: the
engine's exploration places rank them by their text's similarity to the shopper's recent items). Held-out shoppers
arrive with three views of their group and ask for "recommended for you" (k=10), each request with one of the
exploration shares (`new_slots` 0, 1, 2, in turn). A shown product of the shopper's group, new or old, is clicked
with probability `p_base + p_relevant`, any other with `p_base`; a click is bought with probability `p_buy`.

Per share: impressions and clicks, CTR, the share of impressions and of clicks on new products, purchases, and how
many of the new products had a first sale (what a retrain or the ranker's sales following then learns from).

    python -m benchmarks.simulate_exploration     # writes "New products" / "The exploration share, simulated"
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.lib.cli import docs_option, parser, publish
from benchmarks.lib.mdsection import machine
from benchmarks.simulate_shoppers import KEY, open_shop, plant_shop, shop_options, train

THEMES = ["garden", "kitchen", "toy", "lamp", "mug", "scarf", "candle", "bag", "shoe", "clock"]
SHARES = (0, 1, 2)
TITLE = "The exploration share, simulated (simulate_exploration.py)"


def themed_catalog(catalog: Path, groups: int, per_group: int) -> None:
    """The planted catalogue with titles that name their group's theme (what the text vectors can match)."""
    n = groups * per_group
    pl.DataFrame({"item": [f"i{i}" for i in range(n)],
                  "title": [f"{THEMES[i // per_group % len(THEMES)]} product {i % per_group}" for i in range(n)],
                  "category": [f"group{i // per_group}" for i in range(n)],
                  "price": [float(5 + i % 40) for i in range(n)]}).write_csv(catalog)


def new_products(groups: int, per_group: int) -> list[dict]:
    return [{"item_id": f"n{g}_{j}", "title": f"{THEMES[g % len(THEMES)]} novelty {j}", "category": f"group{g}",
             "price": 20.0} for g in range(groups) for j in range(per_group)]


def group_of(item_id: str, per_group: int) -> int:
    return int(item_id[1:].split("_")[0]) if item_id.startswith("n") else int(item_id[1:]) // per_group


def simulate(c, args, rng: np.random.Generator) -> dict[int, dict]:
    shoppers = [f"s{u}" for u in range(args.shoppers)]
    group = {s: int(rng.integers(args.groups)) for s in shoppers}
    events = [{"user_id": s, "item_id": f"i{group[s] * args.items_per_group + i}", "type": "view"}
              for s in shoppers for i in rng.choice(args.items_per_group, size=3, replace=False)]
    for start in range(0, len(events), 900):
        c.post("/v1/events", json={"events": events[start:start + 900]}).raise_for_status()
    out = {n: {"lists": 0, "impressions": 0, "new_impressions": 0, "clicks": 0, "new_clicks": 0, "purchases": 0,
               "sold_new": set(), "text_reasons": 0, "new_relevant": 0} for n in SHARES}
    for visit in range(args.requests):
        share = SHARES[visit % len(SHARES)]
        s = shoppers[int(rng.integers(len(shoppers)))]
        r = c.get(f"/v1/users/{s}/recommendations", params={"k": 10, "placement": "home", "new_slots": share})
        r.raise_for_status()
        answer, o, posted = r.json(), out[share], []
        o["lists"] += 1
        for it in answer["items"]:
            new = it["item_id"].startswith("n")
            o["impressions"] += 1
            o["new_impressions"] += new
            o["text_reasons"] += new and it.get("reason") == "text"
            relevant = group_of(it["item_id"], args.items_per_group) == group[s]
            o["new_relevant"] += new and relevant
            if rng.random() < args.p_base + args.p_relevant * relevant:
                o["clicks"] += 1
                o["new_clicks"] += new
                posted.append({"user_id": s, "item_id": it["item_id"], "type": "view",
                               "recommendation_id": answer["recommendation_id"]})
                if rng.random() < args.p_buy:
                    o["purchases"] += 1
                    if new:
                        o["sold_new"].add(it["item_id"])
                    posted.append({"user_id": s, "item_id": it["item_id"], "type": "purchase", "value": 20.0})
        if posted:
            c.post("/v1/events", json={"events": posted}).raise_for_status()
    return out


def report(args, out: dict[int, dict], train_s: float, sim_s: float) -> str:
    n_new = args.groups * args.new_per_group
    rows = []
    for share, o in out.items():
        ctr = o["clicks"] / max(o["impressions"], 1)
        rows.append(f"| {share} | {o['lists']} | {o['impressions']} | {o['new_impressions'] / max(o['impressions'], 1):.3f} "
                    f"| {o['clicks']} | {ctr:.4f} | {o['new_clicks'] / max(o['clicks'], 1):.3f} | {o['purchases']} "
                    f"| {len(o['sold_new'])} of {n_new} | {o['text_reasons'] / max(o['new_impressions'], 1):.2f} "
                    f"| {o['new_relevant'] / max(o['new_impressions'], 1):.2f} |")
    base = out[SHARES[0]]
    base_ctr = base["clicks"] / max(base["impressions"], 1)
    lines = [f"Command: `python -m benchmarks.simulate_exploration --requests {args.requests}`  ",
             f"Machine: {machine()}; measured {time.strftime('%Y-%m-%d %H:%M')} UTC; runs trained in {train_s:.0f} s, "
             f"the simulation took {sim_s:.0f} s.  ",
             f"The planted shop of the simulator above ({args.groups} groups x {args.items_per_group} products, titles "
             f"naming the group's theme, {args.train_shoppers} training shoppers), EASE with content indexes; then "
             f"{args.new_per_group} new products per group added through `POST /v1/items` (titles of the same theme, "
             f"never seen by the run). {args.shoppers} held-out shoppers, each liking one group, arrive with three views "
             f"of it; each list request (k=10, placement home) takes the next exploration share in turn (`new_slots` "
             f"{', '.join(map(str, SHARES))}). A shown product of the shopper's group, new or old, is clicked with "
             f"probability {args.p_base + args.p_relevant:g}, any other {args.p_base:g}; a click is bought with "
             f"probability {args.p_buy}. All shares serve one store, so a new product's sales under one share feed "
             "the live trending the others read too.", "",
             "| new_slots | lists | impressions | new share of impressions | clicks | CTR | new share of clicks | "
             "purchases | new products sold at least once | new shown by text match | new shown of the shopper's "
             "group |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|", *rows, ""]
    for share, o in out.items():
        if share != SHARES[0]:
            ctr = o["clicks"] / max(o["impressions"], 1)
            lines.append(f"- `new_slots` {share}: CTR {ctr / base_ctr:.2f}x the list without exploration's, "
                         f"{len(o['sold_new'])} of {n_new} new products sold (none without exploration: "
                         f"{len(base['sold_new'])}).")
    return "\n".join(lines)


def main() -> None:
    ap = parser(__doc__)
    shop_options(ap)
    ap.add_argument("--new-per-group", type=int, default=5)
    ap.add_argument("--requests", type=int, default=3000)
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
        themed_catalog(catalog, args.groups, args.items_per_group)
        t0 = time.perf_counter()
        run = train(events, catalog, folder / "ease", "ease")
        train_s = time.perf_counter() - t0
        database = open_shop(folder, catalog)
        settings = Settings(run=run, database=database, api_keys=KEY, watch_run=False, sqlite_synchronous="NORMAL")
        with TestClient(create_app(settings), headers={"X-API-Key": KEY}) as c:
            c.post("/v1/items", json={"items": new_products(args.groups, args.new_per_group)}).raise_for_status()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the content worker indexes the new products' text
                r = c.get("/v1/items/n0_0/similar", params={"k": 3, "by": "text"})
                if r.status_code == 200 and r.json()["items"]:
                    break
                time.sleep(0.5)
            t0 = time.perf_counter()
            out = simulate(c, args, rng)
            sim_s = time.perf_counter() - t0
    body = report(args, out, train_s, sim_s)
    publish(body, args, "New products", sub=TITLE)


if __name__ == "__main__":
    main()
