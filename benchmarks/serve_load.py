"""Load test of `deepshelf serve` on loopback: a synthetic shop (1M items, 100k shoppers by default), one server
process, and an open-loop load generator in this process (a fixed arrival rate, latency counted from each
request's scheduled send time, so a stalled server cannot hide its queueing).

    .venv/bin/python benchmarks/serve_load.py                     # full size, prints the table
    .venv/bin/python benchmarks/serve_load.py --write-docs        # ... and replaces `## Service` in docs/benchmarks.md
    .venv/bin/python benchmarks/serve_load.py --items 100000 --users 10000 --duration 10   # a quick look
    .venv/bin/python benchmarks/serve_load.py --impressions-cost --write-docs   # recording impressions: on vs off

The model is ALS with synthetic clustered item factors (32-d) written as a normal run folder: this measures the
service (store read, fold-in, FAISS IVF retrieval, rules, HTTP), not model quality. Everything stays on 127.0.0.1
and every phase is bounded in time. This file holds the shop, the phases and the report; the HTTP client and the
request drivers are in `loadgen.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import closed_loop, cpu_seconds, jitter_probe, open_loop  # noqa: E402
from mdsection import machine, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("serve_load")
KEY = "bench-key"


# ---- the synthetic shop ------------------------------------------------------------------------------------------
def build(workdir: Path, n_items: int, n_users: int, events_per_user: int, dim: int, seed: int = 0) -> tuple[Path, str]:
    """A run folder (ALS, synthetic factors) and a SQLite store holding the catalogue and the shoppers' events.
    Cached in `workdir` by size."""
    from deepshelf.data.idmap import IdMap
    from deepshelf.models.als import ALS
    from deepshelf.runs.artifacts import write_run
    from deepshelf.runs.config import TrainConfig
    from deepshelf.storage import Event, Item, open_store

    tag = f"{n_items}-{n_users}-{events_per_user}-{dim}"
    run, db = workdir / f"run-{tag}", workdir / f"store-{tag}.db"
    database = f"sqlite:///{db}"
    if run.exists() and (workdir / f"store-{tag}.ok").exists():
        return run, database
    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_clusters = max(10, n_items // 2000)
    cluster = rng.integers(n_clusters, size=n_items)
    centres = rng.normal(size=(n_clusters, dim)).astype(np.float32)
    factors = (centres[cluster] + 0.5 * rng.normal(size=(n_items, dim))).astype(np.float32) * 0.3
    ids = np.array([f"p{i}" for i in range(n_items)], dtype=object)

    t = time.perf_counter()
    model = ALS(factors=dim)
    model.item_map = IdMap(ids)
    model.item_factors = factors
    popularity = rng.zipf(1.3, size=n_items).astype(np.float64)
    model.item_popularity = (popularity / popularity.max()).astype(np.float32)
    write_run(run, TrainConfig(dataset="synthetic", model="als", params={"factors": dim}), model,
              {"version": f"synthetic-als-{tag}", "model": "als", "dataset": "synthetic", "items": n_items})
    log.info("run written in %.1fs", time.perf_counter() - t)

    if db.exists():
        db.unlink()
    store = open_store(database, sqlite_synchronous="NORMAL")  # bulk load; the server itself runs FULL
    t = time.perf_counter()
    by_cluster = np.argsort(cluster, kind="stable")
    starts = np.searchsorted(cluster[by_cluster], np.arange(n_clusters + 1))
    for lo in range(0, n_items, 20_000):
        hi = min(n_items, lo + 20_000)
        store.upsert_items([Item(item_id=ids[i], title=f"{WORDS[i % len(WORDS)]} {WORDS[(i * 7) % len(WORDS)]} {i}",
                                 category=f"c{cluster[i] % 200}", price=float(5 + (i % 500)),
                                 in_stock=bool(i % 20)) for i in range(lo, hi)])
    log.info("catalogue of %d items stored in %.1fs", n_items, time.perf_counter() - t)
    t = time.perf_counter()
    now = time.time()
    types = ["view"] * 7 + ["cart"] * 2 + ["purchase"]
    batch = []
    for u in range(n_users):
        liked = rng.integers(n_clusters, size=2)
        for _ in range(events_per_user):
            c = liked[rng.integers(2)]
            members = by_cluster[starts[c]:starts[c + 1]]
            item = members[min(int(rng.zipf(1.5)) - 1, len(members) - 1)] if len(members) else rng.integers(n_items)
            batch.append(Event(f"s{u}", ids[item], types[rng.integers(len(types))], now - rng.uniform(0, 3 * 86400)))
        if len(batch) >= 50_000:
            store.add_events(batch)
            batch = []
    store.add_events(batch)
    store.close()
    (workdir / f"store-{tag}.ok").write_text("ok")
    log.info("%d events stored in %.1fs", n_users * events_per_user, time.perf_counter() - t)
    return run, database


WORDS = ["lamp", "chair", "mug", "shirt", "vase", "candle", "table", "scarf", "clock", "bowl", "plate", "jacket",
         "basket", "mirror", "pillow", "rug", "kettle", "glass", "towel", "frame"]


# ---- driver ------------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_phases(host, port, args, n_items, n_users, server_pid: int) -> list[tuple[str, dict]]:
    rnd = random.Random(1)
    user = lambda: f"s{rnd.randrange(n_users)}"  # noqa: E731
    item = lambda: f"p{rnd.randrange(n_items)}"  # noqa: E731
    results = []
    # warm-up (page cache, first-call costs), not reported
    await open_loop(host, port, KEY, lambda: ("GET", f"/v1/users/{user()}/recommendations?k=10"), 100, 3, 16)
    phases = [
        (f"GET /v1/users/{{id}}/recommendations (at {args.low_rate:.0f} req/s)",
         lambda: ("GET", f"/v1/users/{user()}/recommendations?k=10"), args.low_rate, args.short * 2),
        ("GET /v1/users/{id}/recommendations", lambda: ("GET", f"/v1/users/{user()}/recommendations?k=10"),
         args.rate, args.duration),
        ("POST /v1/sessions/recommendations", lambda: ("POST", "/v1/sessions/recommendations?k=10", json.dumps(
            {"item_ids": [item() for _ in range(3)]}).encode()), args.rate, args.short),
        ("GET /v1/items/{id}/similar", lambda: ("GET", f"/v1/items/{item()}/similar?k=10"), args.rate, args.short),
        ("GET /v1/popular", lambda: ("GET", "/v1/popular?k=10"), args.rate, args.short),
        ("GET /v1/users/{id}/events", lambda: ("GET", f"/v1/users/{user()}/events?limit=20"), args.rate, args.short),
        ("GET /v1/items/{id}", lambda: ("GET", f"/v1/items/{item()}"), args.rate, args.short),
        ("GET /v1/search", lambda: ("GET", f"/v1/search?q={rnd.choice(WORDS)}%20{rnd.randrange(1000)}&k=10"),
         args.search_rate, args.short),
    ]
    for name, make, rate, duration in phases:
        log.info("%s: %.0f req/s for %.0fs", name, rate, duration)
        cpu = cpu_seconds(server_pid)
        result = {"rate": rate, **await open_loop(host, port, KEY, make, rate, duration, 32)}
        result["cpu_ms"] = (cpu_seconds(server_pid) - cpu) * 1000 / max(1, result["requests"])
        log.info("  -> %.0f req/s, p50 %.2f ms, p99 %.2f ms, errors %d", result["rps"], result["p50"], result["p99"],
                 result["errors"])
        results.append((name, result))
    single = lambda: ("POST", "/v1/events", json.dumps(  # noqa: E731
        {"events": [{"user_id": user(), "item_id": item(), "type": "view"}]}).encode())
    batched = lambda: ("POST", "/v1/events", json.dumps(  # noqa: E731
        {"events": [{"user_id": user(), "item_id": item(), "type": "view"} for _ in range(100)]}).encode())
    log.info("ingestion: single events, then batches of 100, %.0fs each", args.short)
    for name, make, conns, per in (("POST /v1/events (1 event per request)", single, 8, 1),
                                   ("POST /v1/events (100 events per request)", batched, 4, 100)):
        cpu = cpu_seconds(server_pid)
        result = await closed_loop(host, port, KEY, make, args.short, conns, per)
        result["cpu_ms"] = (cpu_seconds(server_pid) - cpu) * 1000 / max(1, result["requests"])
        results.append((name, result))
    return results


def start_server(run: Path, database: str, workers: int, server_log: Path, extra_env: dict) -> tuple:
    """`deepshelf serve` on a free loopback port, once /health answers: (process, port, start-up seconds)."""
    import httpx

    port = free_port()
    env = {**os.environ, "DEEPSHELF_API_KEYS": KEY, "PYTHONPATH": str(ROOT / "src"),
           # the live-trending aggregate scans the event table; once at start is enough for a load test
           "DEEPSHELF_TRENDING_REFRESH_S": "3600", "OMP_NUM_THREADS": "1", **extra_env}
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "deepshelf", "serve", "--run", str(run), "--database", database,
                             "--port", str(port), "--log-level", "warning", "--workers", str(workers)], env=env,
                            stdout=open(server_log, "wb"), stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {server_log.read_text()[-3000:]}")
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
            break
        except httpx.HTTPError:
            if time.time() > deadline:
                stop_server(proc)
                raise SystemExit("server did not start in 10 minutes") from None
            time.sleep(0.5)
    log.info("server up in %.1fs: %s", time.perf_counter() - t, health)
    return proc, port, time.perf_counter() - t


def stop_server(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def writer_cost(workdir: Path, n: int = 20_000, k: int = 10) -> tuple[float, float]:
    """CPU ms per list of the recording alone, in this process: the request side (a recommendation_id and the
    queue append) and the writer's side (batched inserts into a SQLite store, synchronous=FULL as served)."""
    from deepshelf.serving.impressions import ImpressionWriter, new_recommendation_id
    from deepshelf.storage import open_store

    db = workdir / "impressions-cost.db"
    db.unlink(missing_ok=True)
    store = open_store(f"sqlite:///{db}")
    writer = ImpressionWriter(store, flush_s=3600, batch=1000, capacity=n + 1)
    items = [f"p{i}" for i in range(k)]
    t = time.process_time()
    for i in range(n):
        writer.record(new_recommendation_id(), f"s{i}", None, "home", "recommendations", "v1", None, None, items)
    request_side = (time.process_time() - t) * 1000 / n
    t = time.process_time()
    writer.flush()
    writer_side = (time.process_time() - t) * 1000 / n
    store.close()
    return request_side, writer_side


def impressions_cost(args, run: Path, database: str) -> str:
    """Server CPU per user-recommendations request with impression recording off and on, the same load each
    time (open loop at --rate for --short s, after a warm-up), alternating off/on --repeats times so that drift of
    the machine falls on both; the difference of the medians is the recording's cost (queue append, id, the
    background writer's batched inserts)."""
    cpu = {"off": [], "on": []}
    for r in range(args.repeats):
        for mode in ("off", "on"):
            proc, port, _ = start_server(run, database, args.workers, args.workdir / f"server-{mode}.log",
                                         {"DEEPSHELF_RECORD_IMPRESSIONS": "true" if mode == "on" else "false"})
            try:
                rnd = random.Random(r)
                make = lambda: ("GET", f"/v1/users/s{rnd.randrange(args.users)}/recommendations?k=10")  # noqa: E731
                asyncio.run(open_loop("127.0.0.1", port, KEY, make, 100, 3, 16))  # warm-up
                before = cpu_seconds(proc.pid)
                result = asyncio.run(open_loop("127.0.0.1", port, KEY, make, args.rate, args.short, 32))
                ms = (cpu_seconds(proc.pid) - before) * 1000 / max(1, result["requests"])
            finally:
                stop_server(proc)  # recording on: the shutdown stores what is queued (not in the phase's CPU)
            cpu[mode].append(ms)
            log.info("impressions %s: %.3f ms CPU / request (%d requests, %d errors)", mode, ms, result["requests"],
                     result["errors"])
    off, on = float(np.median(cpu["off"])), float(np.median(cpu["on"]))
    request_side, writer_side = writer_cost(args.workdir)
    return (f"`benchmarks/serve_load.py --impressions-cost --repeats {args.repeats}` "
            f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}), machine: {machine()}, load average "
            f"{os.getloadavg()[0]:.1f}. A synthetic shop built as for the Service section (ALS, SQLite store) with "
            f"{args.items:,} items and {args.users:,} shoppers; `GET /v1/users/{{id}}/recommendations?k=10` open loop at {args.rate:.0f} req/s for "
            f"{args.short:.0f} s per server, one server with recording off (`DEEPSHELF_RECORD_IMPRESSIONS=false`) "
            f"and one with it on, alternately, {args.repeats} times each. Server CPU (user + system, all threads, "
            "the background writer's included) per request:\n\n"
            "| impressions | CPU ms / request (each run) | median |\n|---|---|---:|\n"
            f"| off | {', '.join(f'{v:.3f}' for v in cpu['off'])} | {off:.3f} |\n"
            f"| on | {', '.join(f'{v:.3f}' for v in cpu['on'])} | {on:.3f} |\n\n"
            f"Median with recording on minus off: {on - off:+.3f} ms of server CPU per list request; the runs of "
            f"one mode spread over {max(np.ptp(cpu['off']), np.ptp(cpu['on'])):.3f} ms, so a difference smaller "
            "than that is this machine's noise, not the recording (target: at most 0.3 ms).\n\n"
            "The recording alone, measured in one process (`writer_cost`: 20,000 lists of 10 items; CPU time): "
            f"{request_side:.4f} ms per list on the request (an id and a queue append) and {writer_side:.4f} ms "
            "per list in the background writer (batches of 1,000 inserted into SQLite, synchronous=FULL), "
            f"{request_side + writer_side:.3f} ms in all.\n")


def table(results, server_side: dict) -> str:
    lines = ["| endpoint | target req/s | achieved req/s | p50 ms | p99 ms | max ms | errors | server p50 / p99 ms "
             "| server CPU ms / request |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results:
        target = f"{r['rate']:.0f}" if "rate" in r else "closed loop"
        route = name.split(" (")[0]  # "GET /v1/..." without the "(at N req/s)" / "(1 event ...)" notes
        ss = server_side.get(route)
        ss_text = f"{ss['p50_ms']:.2f} / {ss['p99_ms']:.2f}" if ss else "-"
        extra = f" ({r['events_per_s']:,.0f} events/s)" if "events_per_s" in r else ""
        lines.append(f"| {name}{extra} | {target} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
                     f"{r['max']:.1f} | {r['errors']} | {ss_text} | {r.get('cpu_ms', float('nan')):.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--events-per-user", type=int, default=20)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--rate", type=float, default=500.0, help="arrival rate of each read phase, req/s")
    ap.add_argument("--search-rate", type=float, default=2.0)
    ap.add_argument("--low-rate", type=float, default=150.0, help="a first user-recommendations phase at this rate")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of the user-recommendations phase")
    ap.add_argument("--short", type=float, default=10.0, help="seconds of every other phase")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/deepshelf-serve-bench"))
    ap.add_argument("--workers", type=int, default=1, help="server processes (deepshelf serve --workers)")
    ap.add_argument("--jitter-seconds", type=float, default=20.0, help="length of the machine-noise probe")
    ap.add_argument("--write-docs", action="store_true", help="replace the '## Service' section of docs/benchmarks.md")
    ap.add_argument("--impressions-cost", action="store_true",
                    help="only measure server CPU per request with impression recording off and on ('## Impressions')")
    ap.add_argument("--repeats", type=int, default=3, help="off/on pairs of --impressions-cost")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the cleanup below when killed
    run, database = build(args.workdir, args.items, args.users, args.events_per_user, args.dim)
    if args.impressions_cost:
        section = impressions_cost(args, run, database)
        print(section)
        if args.write_docs:
            write_section("Impressions", section)
        return
    load_before = os.getloadavg()[0]
    jitter = jitter_probe(args.jitter_seconds)
    log.info("machine jitter: fixed work median %.2f ms, p99 %.2f ms, max %.1f ms", jitter["median"], jitter["p99"],
             jitter["max"])
    proc, port, startup = start_server(run, database, args.workers, args.workdir / "server.log", {})
    try:
        import httpx

        results = asyncio.run(run_phases("127.0.0.1", port, args, args.items, args.users, proc.pid))
        server_side = {f"{r['method']} {r['route'].replace('{user_id}', '{id}').replace('{item_id}', '{id}')}": r
                       for r in httpx.get(f"http://127.0.0.1:{port}/v1/stats/latency").json()["routes"]}
    finally:  # also on Ctrl-C / SIGTERM of this script: never leave the server behind
        stop_server(proc)
    body = table(results, server_side)
    main_phase = dict(results)["GET /v1/users/{id}/recommendations"]
    met = main_phase["p99"] <= 10 and main_phase["rps"] >= 500 * 0.98 and not main_phase["errors"]
    verdict = (f"Target (user recommendations p99 <= 10 ms at >= 500 req/s for {args.duration:.0f} s): "
               f"{'met' if met else 'NOT met'} in this run: {main_phase['rps']:.0f} req/s achieved, p99 "
               f"{main_phase['p99']:.1f} ms. The server's CPU cost is {main_phase['cpu_ms']:.2f} ms per request, so "
               f"500 req/s needs {main_phase['cpu_ms'] * 0.5:.2f} CPU-seconds per second.")
    section = (
        f"`benchmarks/serve_load.py --workers {args.workers}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): "
        f"`deepshelf serve` with {args.workers} worker process(es) and the load generator on the same machine, "
        f"loopback only. Machine: {machine()}; load average before the run {load_before:.1f}, after {os.getloadavg()[0]:.1f} "
        f"({'nothing else was running' if load_before < 0.5 else 'the machine was shared with other work'}).\n"
        f"Synthetic shop: {args.items:,} items, {args.users:,} shoppers with {args.events_per_user} events each in the "
        f"SQLite store (WAL, synchronous=FULL); model ALS with {args.dim}-d synthetic item factors, retrieval by a "
        "FAISS IVF index (exact below 50,000 items), business-rule defaults on (in stock only, purchased excluded). "
        f"Server start-up (catalogue into memory, index build): {startup:.0f} s.\n\n"
        "Read phases are open loop: requests are sent at the target rate whatever the server does, and latency "
        "counts from each request's scheduled send time (queueing included). Ingestion phases are closed loop "
        "(8 connections sending single events, 4 sending batches of 100); every request is answered after the "
        "commit. 'server p50 / p99' is the server's own view (`/v1/stats/latency`, last 10,000 requests per "
        "route, of the one worker that answered the stats request). 'server CPU ms / request' is the server "
        "processes' user + system CPU time over the phase divided by its requests: the cost of one request independent of how busy the machine is (on an idle 2-core machine "
        "500 req/s needs 500 x that many ms of CPU per second). "
        f"User recommendations ran {args.duration:.0f} s; the other phases {args.short:.0f} s each.\n\n"
        f"{body}\n\n{verdict}\n\n"
        f"The machine's own noise, measured first with no server running (`jitter_probe`: a fixed piece of "
        f"Python + numpy work, 150 times a second for {args.jitter_seconds:.0f} s): median {jitter['median']:.2f} ms, "
        f"p99 {jitter['p99']:.2f} ms ({jitter['p99'] / jitter['median']:.1f}x the median), max {jitter['max']:.1f} ms; "
        f"{jitter['slow_share']:.1%} of runs took over 3x the median; the hypervisor reported "
        f"{jitter['steal_s']:.1f} s of stolen CPU time over the probe. A request can be no steadier than the work "
        "under it, so the server's p99 inherits that factor.\n\n"
        "Search has no semantic index in this run, so it falls back to a substring match over a million titles "
        "(a table scan), hence its low rate.\n"
    )
    print(section)
    if args.write_docs:
        write_section("Service", section)
        log.info("wrote the Service section of docs/benchmarks.md")


if __name__ == "__main__":
    main()
