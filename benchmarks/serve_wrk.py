"""Throughput of `deepshelf serve` under `wrk` (a C load generator, closed loop, 16 connections), against the bare
FastAPI endpoints of `lib/bare_app.py` (a plain `def` route and an `async def` one) in the same run, with 1 and 2
worker processes, on 100,000 and 1,000,000 products, reads only and a 90/10 read/write mix; resident memory per
worker; and the open-loop CPU per request of one worker against the bare `def` endpoint (`serve_load.py`'s phases).

    apt-get install -y wrk                          # the Debian package (not installed by .ci/run)
    .venv/bin/python -m benchmarks.serve_wrk        # the whole benchmark (about 15 minutes), prints the tables
    .venv/bin/python -m benchmarks.serve_wrk --write-docs             # ... and writes them into docs/benchmarks.md
    .venv/bin/python -m benchmarks.serve_wrk --items 100000 --duration 8   # a quick look (about 5 minutes)
    .venv/bin/python -m benchmarks.serve_wrk --open-only --items 100000   # CPU per request alone (about 4 minutes)
    pip install py-spy; .venv/bin/python -m benchmarks.serve_wrk --profile --profile-before ../old/src --write-docs
                                                    # ... with where one worker's time goes, this code and another's

The first run also builds the synthetic shops (about 1.5 minutes for 1,000,000 products), kept in --workdir.

The requests are the storefront's: `GET /v1/users/{id}/recommendations?k=10&details=true` with the public key and
the shopper's token (`X-Shopper-Token`), a random shopper of the synthetic shop (`lib/shop.py`) per request; the
mix posts one view event (public key) instead, one request in ten. wrk and the server share the machine's cores
(wrk runs one thread); each measurement runs on a fresh server after a short warm-up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.lib.cli import docs_option, parser
from benchmarks.lib.loadgen import PUBLIC_KEY, cpu_seconds, open_loop, start_bare, start_server, stop_server
from benchmarks.lib.mdsection import machine, write_in_section
from benchmarks.lib import profile
from benchmarks.lib.noise import jitter_probe, probe_text
from benchmarks.lib.shop import build, working_copy

log = logging.getLogger("serve_wrk")
SECRET = "bench-token-secret"
QUERY = "k=10&details=true"  # what the storefront asks
SERVER_ENV = {"DEEPSHELF_TOKEN_SECRET": SECRET, "DEEPSHELF_STORE_TIMEOUT_S": "30"}  # every deepshelf server's
TOKENED_USERS = 5000  # shoppers the Lua script holds tokens for (drawn from the shop's)
WRK_TITLE = "Throughput under wrk (serve_wrk.py)"  # its part of the Service section (serve_load.py's beside it)

LUA = """
local users = {%(users)s}
local tokens = {%(tokens)s}
local write_share = %(write_share)s
local n_items = %(n_items)d
math.randomseed(%(seed)d)
function request()
  local i = math.random(#users)
  if math.random() < write_share then
    local body = '{"events":[{"user_id":"' .. users[i] .. '","item_id":"p' .. math.random(0, n_items - 1) ..
                 '","type":"view"}]}'
    return wrk.format("POST", "/v1/events", {["X-API-Key"]="%(key)s", ["Content-Type"]="application/json"}, body)
  end
  return wrk.format("GET", "%(prefix)s/v1/users/" .. users[i] .. "/recommendations?%(query)s",
                    {["X-API-Key"]="%(key)s", ["X-Shopper-Token"]=tokens[i]})
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d,' ..
    '"non2xx":%%d,"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
"""


def lua_script(path: Path, n_users: int, n_items: int, write_share: float, prefix: str = "") -> Path:
    from deepshelf.tokens import mint

    rnd = random.Random(7)
    users = [f"s{rnd.randrange(n_users)}" for _ in range(min(TOKENED_USERS, n_users))]
    tokens = [mint(SECRET, u, ttl=24 * 3600) for u in users]
    path.write_text(LUA % {"users": ",".join(f'"{u}"' for u in users), "tokens": ",".join(f'"{t}"' for t in tokens),
                           "write_share": write_share, "n_items": n_items, "seed": 11, "key": PUBLIC_KEY,
                           "prefix": prefix, "query": QUERY})
    return path


def wrk(port: int, script: Path, duration: float, conns: int) -> dict:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{duration:.0f}s", "--timeout", "5s", "-s", str(script),
           f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    r = json.loads(line.removeprefix("WRKJSON "))
    seconds = r["duration_us"] / 1e6
    errors = r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return {"requests": r["requests"], "rps": r["requests"] / seconds, "answered_rps": (r["requests"] - errors) / seconds,
            "p50": r["p50_us"] / 1000, "p99": r["p99_us"] / 1000, "max": r["max_us"] / 1000, "errors": errors}


def worker_pids(pid: int) -> list[int]:
    """The processes that serve: uvicorn's worker children when it has any (not multiprocessing's resource
    tracker), else the process itself."""
    try:
        children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        children = []
    workers = []
    for child in children:
        try:
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(child)
        except OSError:
            pass
    return workers or [pid]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(start, script: Path, args, warm_script: Path | None = None) -> dict:
    """A fresh server from `start()`, warmed up, then wrk for `args.duration` s: throughput, latency, the server's
    CPU per request and each worker's resident memory."""
    proc, port, _ = start()
    try:
        wrk(port, warm_script or script, args.warmup, args.conns)
        cpu = cpu_seconds(proc.pid)
        result = wrk(port, script, args.duration, args.conns)
        result["cpu_ms"] = (cpu_seconds(proc.pid) - cpu) * 1000 / max(1, result["requests"])
        result["rss"] = [rss_mib(p) for p in worker_pids(proc.pid)]
    finally:
        stop_server(proc)
    log.info("  %.0f answered req/s, p50 %.2f ms, p99 %.2f ms, %d errors, CPU %.3f ms/request, RSS %s MiB",
             result["answered_rps"], result["p50"], result["p99"], result["errors"], result["cpu_ms"],
             ", ".join(f"{m:.0f}" for m in result["rss"]))
    return result


def open_loop_cpu(start, make, args) -> dict:
    """One worker at a fixed arrival rate (open loop, latency from each request's scheduled send time): the
    server's CPU per request."""
    proc, port, _ = start()
    try:
        asyncio.run(open_loop("127.0.0.1", port, PUBLIC_KEY, make, 100, 2.0, 8))  # warm-up
        cpu = cpu_seconds(proc.pid)
        r = asyncio.run(open_loop("127.0.0.1", port, PUBLIC_KEY, make, args.rate, args.open_duration, 16))
        r["cpu_ms"] = (cpu_seconds(proc.pid) - cpu) * 1000 / max(1, r["requests"])
    finally:
        stop_server(proc)
    log.info("  open loop %.0f req/s: p50 %.2f ms, p99 %.2f ms, CPU %.3f ms/request", r["rps"], r["p50"], r["p99"],
             r["cpu_ms"])
    return r


def profile_run(start, script: Path, args, out: Path) -> tuple[int, float, dict[str, float]]:
    """Where one worker's time goes under wrk (`lib/profile.py`): (samples, server CPU ms per request over the
    load, {bucket: share})."""
    proc, port, _ = start()
    try:
        wrk(port, script, args.warmup, args.conns)
        pid = worker_pids(proc.pid)[0]
        cpu = cpu_seconds(proc.pid)
        load = subprocess.Popen(["wrk", "-t1", f"-c{args.conns}", f"-d{args.duration + 4:.0f}s", "-s", str(script),
                                 f"http://127.0.0.1:{port}"], stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        profile.record(pid, args.duration, out)
        text = load.communicate(timeout=args.duration + 60)[0]
        cpu = cpu_seconds(proc.pid) - cpu
    finally:
        stop_server(proc)
    line = next(x for x in text.splitlines() if x.startswith("WRKJSON "))
    requests = json.loads(line.removeprefix("WRKJSON "))["requests"]
    total, shares = profile.breakdown(out)
    return total, cpu * 1000 / max(1, requests), dict(shares)


def profile_table(profiles: list[tuple[str, int, float, dict[str, float]]]) -> str:
    """One column per profiled code base (its samples and the server's CPU per request over the load), a row per
    bucket (in the first one's order)."""
    buckets = list(dict.fromkeys(b for *_, shares in profiles for b in shares))
    head = "| where | " + " | ".join(f"{name} ({total:,} samples; {cpu:.2f} ms CPU / request)"
                                     for name, total, cpu, _ in profiles) + " |"
    return "\n".join([head, "|---|" + "---:|" * len(profiles)]
                     + [f"| {b} | " + " | ".join(f"{shares.get(b, 0.0):.1%}" for *_, shares in profiles) + " |"
                        for b in buckets])


def row(name: str, workers: int, r: dict) -> str:
    return (f"| {name} | {workers} | {r['answered_rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.1f} | "
            f"{r['errors']} | {r['cpu_ms']:.3f} | {' / '.join(f'{m:.0f}' for m in r['rss'])} |")


def run_size(args, n_items: int, workdir: Path) -> tuple[list[str], dict]:
    run, built = build(workdir, n_items, args.users, args.events_per_user, args.dim)
    env = SERVER_ENV
    reads = lua_script(workdir / f"reads-{n_items}.lua", args.users, n_items, 0.0)
    mixed = lua_script(workdir / f"mixed-{n_items}.lua", args.users, n_items, 0.1)
    bare_def = lua_script(workdir / "bare-def.lua", args.users, n_items, 0.0)
    bare_async = lua_script(workdir / "bare-async.lua", args.users, n_items, 0.0, prefix="/async")
    rows, out = [], {}
    for workers in args.workers:
        def deepshelf(extra=None):
            return start_server(run, working_copy(built), workers, workdir / "server.log", {**env, **(extra or {})})

        def uncached():  # every list reads the shopper's history from the store (the cache's worst case)
            return deepshelf({"DEEPSHELF_SHOPPER_CACHE_SIZE": "0"})

        def bare():
            return start_bare(workers, workdir / "bare.log", None)

        for name, start, script in ((f"deepshelf, reads ({n_items:,} products)", deepshelf, reads),
                                    (f"deepshelf, 90% reads / 10% events ({n_items:,} products)", deepshelf, mixed),
                                    (f"deepshelf, reads, no shopper held in memory ({n_items:,} products)",
                                     uncached, reads),
                                    ("bare FastAPI, `def` route", bare, bare_def),
                                    ("bare FastAPI, `async def` route", bare, bare_async)):
            if name.startswith("bare") and n_items != args.items[0]:
                continue  # the bare endpoints do not depend on the catalogue: measured once
            log.info("%s, %d worker(s)", name, workers)
            r = measure(start, script, args, warm_script=None if name.startswith("bare") else reads)
            out[(name, workers)] = r
            rows.append(row(name, workers, r))
    if args.profile and n_items == args.items[0]:
        if not profile.available():
            log.warning("py-spy is not installed (pip install py-spy): no profile")
        else:
            profiles = []
            for name, src in ([("before", args.profile_before)] if args.profile_before else []) + [("this code", None)]:
                log.info("profile of one worker under wrk (%s)", src or "this checkout")
                extra = {**env, **({"PYTHONPATH": str(src)} if src else {})}
                total, cpu, shares = profile_run(
                    lambda: start_server(run, working_copy(built), 1, workdir / "server.log", extra), reads, args,
                    workdir / f"profile-{name.replace(' ', '-')}.txt")
                profiles.append((name, total, cpu, shares))
            out[("profile", 0)] = profile_table(profiles)
    return rows, out


def open_loop_rounds(args, workdir: Path) -> dict:
    """The open-loop CPU per request of one worker, deepshelf at each catalogue size and the bare `def` endpoint,
    in `--open-rounds` interleaved rounds (each side on a fresh server in every round, so a slow spell of the
    shared machine falls on both sides alike); the 90/10 mix once, on the largest catalogue. Results: per side,
    every round's measurement (`open`, `open-bare`) and the mix (`open-mixed`)."""
    from deepshelf.tokens import mint

    shops = {n: build(workdir, n, args.users, args.events_per_user, args.dim) for n in args.items}
    rnd = random.Random(3)
    tokens = {}

    def make():
        user = f"s{rnd.randrange(args.users)}"
        tokens.setdefault(user, mint(SECRET, user, ttl=24 * 3600))
        return ("GET", f"/v1/users/{user}/recommendations?{QUERY}", None, {"X-Shopper-Token": tokens[user]})

    def server(n):
        run, built = shops[n]
        return lambda: start_server(run, working_copy(built), 1, workdir / "server.log", SERVER_ENV)

    out: dict = {}
    for round_ in range(args.open_rounds):
        for n_items in args.items:
            log.info("open loop round %d, one worker, deepshelf (%s products) at %.0f req/s", round_ + 1,
                     f"{n_items:,}", args.rate)
            out.setdefault(("open", n_items), []).append(open_loop_cpu(server(n_items), make, args))
        log.info("open loop round %d, one worker, bare `def` at %.0f req/s", round_ + 1, args.rate)
        out.setdefault(("open-bare", 0), []).append(open_loop_cpu(
            lambda: start_bare(1, workdir / "bare.log", None),
            lambda: ("GET", f"/v1/users/s{rnd.randrange(args.users)}/recommendations?{QUERY}"), args))
    n_items = max(args.items)  # the 90/10 mix at a fixed rate, on the largest catalogue (the 1M)

    def mixed_make():
        if rnd.random() >= 0.1:
            return make()
        user = f"s{rnd.randrange(args.users)}"
        return ("POST", "/v1/events", json.dumps({"events": [
            {"user_id": user, "item_id": f"p{rnd.randrange(n_items)}", "type": "view"}]}).encode())

    log.info("open loop, one worker, 90%% reads / 10%% events at %.0f req/s", args.rate)
    out[("open-mixed", n_items)] = open_loop_cpu(server(n_items), mixed_make, args)
    return out


def report(args, rows, results, before, after, load) -> str:
    command = " ".join(["python -m benchmarks.serve_wrk"] + sys.argv[1:])
    lines = []
    for n_items in args.items:
        name = f"deepshelf, reads ({n_items:,} products)"
        if (name, 2) in results:
            r = results[(name, 2)]
            met = r["answered_rps"] >= 1000 and r["p99"] <= 50 and not r["errors"]
            lines.append(f"**{n_items:,} products, 2 workers: {r['answered_rps']:,.0f} answered req/s, p99 "
                         f"{r['p99']:.1f} ms, {r['errors']} errors (goal >= 1,000 req/s with p99 <= 50 ms: "
                         f"{'met' if met else 'NOT met'}).**")
    bare = results.get(("open-bare", 0))
    for n_items in args.items:
        mine = results.get(("open", n_items))
        if mine and bare:
            cpu = statistics.median(r["cpu_ms"] for r in mine)
            bare_cpu = statistics.median(r["cpu_ms"] for r in bare)
            ratio = cpu / bare_cpu
            rounds = ", ".join(f"{m['cpu_ms']:.3f} / {b['cpu_ms']:.3f} = {m['cpu_ms'] / b['cpu_ms']:.2f}x"
                               for m, b in zip(mine, bare))
            lines.append(f"**Open loop at {args.rate:.0f} req/s, one worker, {n_items:,} products: "
                         f"{cpu:.3f} ms of server CPU per request (median of {len(mine)} rounds), {ratio:.2f}x the "
                         f"bare `def` endpoint's {bare_cpu:.3f} ms (goal <= 2x: {'met' if ratio <= 2 else 'NOT met'});"
                         f" p50 {statistics.median(r['p50'] for r in mine):.2f} ms, p99 "
                         f"{max(r['p99'] for r in mine):.2f} ms "
                         f"(worst round), {sum(r['errors'] for r in mine)} errors.** Each round, deepshelf / bare: "
                         f"{rounds}.")
    for (kind, n_items), mixed in results.items():
        if kind == "open-mixed":
            reads_, writes = (mixed.get("by_method", {}).get(m, {}) for m in ("GET", "POST"))
            lines.append(f"**Open loop at {args.rate:.0f} req/s, one worker, {n_items:,} products, 90% lists / 10% "
                         f"events: p50 {mixed['p50']:.2f} ms, p99 {mixed['p99']:.2f} ms (goal <= 10 ms at 1,000,000 "
                         f"products: {'met' if mixed['p99'] <= 10 else 'NOT met'}; lists p99 "
                         f"{reads_.get('p99', float('nan')):.2f} ms, events p99 {writes.get('p99', float('nan')):.2f}"
                         f" ms), {mixed['errors']} errors, {mixed['cpu_ms']:.3f} ms of server CPU per request.**")
    profiled = ""
    if ("profile", 0) in results:
        profiled = (f"\n\nWhere the time goes: py-spy sampling one worker under wrk (reads, {args.items[0]:,} "
                    f"products, {args.duration:.0f} s; the samples of the thread holding the GIL, each in the first "
                    "bucket whose frames it holds: `lib/profile.py`)"
                    + (f"; 'before': the server's code from `{args.profile_before}`" if args.profile_before else "")
                    + ":\n\n" + results[("profile", 0)])
    return "\n\n".join(lines) + (
        f"\n\nCommand: `{command}`  \nMachine: {machine()}; measured "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average before {load[0]:.2f}, after "
        f"{load[1]:.2f}.  \n"
        f"Synthetic shop (`lib/shop.py`): {args.users:,} shoppers with {args.events_per_user} events each in the "
        f"SQLite store, ALS with {args.dim}-d synthetic factors (FAISS IVF retrieval above 50,000 items). "
        f"`deepshelf serve --workers N` with its defaults (impressions recorded, trending refreshed, shedding at 32 "
        f"requests per process) and shopper tokens on. wrk {args.conns} connections, one thread, on the same "
        f"2 cores as the server; {args.duration:.0f} s per row after a {args.warmup:.0f} s warm-up on a fresh "
        f"server. Requests: `GET /v1/users/{{id}}/recommendations?{QUERY}` with the public key and the shopper's "
        f"token, {TOKENED_USERS:,} shoppers drawn at random; the mix replaces one request in ten with `POST "
        "/v1/events` (one view) for one of the same shoppers, which drops that shopper's history held in memory (the "
        "next list reads the store). The warm-up asks for the same shoppers' lists, so in the read rows most "
        "histories are held in memory (a shopper reloading a page, with no event in between); the row 'no shopper "
        "held in memory' (`DEEPSHELF_SHOPPER_CACHE_SIZE=0`) reads every history from the store, each list's worst "
        "case. 'errors': non-2xx answers, socket errors and timeouts. 'CPU ms / request': the "
        "server processes' user + system CPU over the row divided by its requests (wrk's own CPU not included). "
        "'RSS': resident memory of each worker process at the end of the row.\n\n"
        "| what | workers | answered req/s | p50 ms | p99 ms | max ms | errors | server CPU ms / request | "
        "RSS per worker MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows)) + profiled + (
        f"\n\nNoise probe (a fixed piece of Python + numpy work, 150 times a second for {args.jitter_seconds:.0f} s,"
        f" no server running) before: {probe_text(before)}; after: {probe_text(after)}.\n")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--items", type=lambda s: [int(x) for x in s.split(",")], default=[100_000, 1_000_000],
                    help="catalogue sizes, comma-separated")
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--events-per-user", type=int, default=20)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--duration", type=float, default=15.0, help="seconds of wrk per row")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--rate", type=float, default=200.0, help="open-loop rate of the CPU-per-request rows (0: skip)")
    ap.add_argument("--open-duration", type=float, default=15.0)
    ap.add_argument("--open-only", action="store_true",
                    help="only the open-loop rows (a quick look at CPU per request; not written to the docs)")
    ap.add_argument("--open-rounds", type=int, default=3,
                    help="interleaved rounds of the open-loop rows (deepshelf at each size, then bare): medians")
    ap.add_argument("--jitter-seconds", type=float, default=10.0)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/deepshelf-serve-bench"))
    ap.add_argument("--profile", action="store_true", help="also profile one worker under wrk (needs py-spy)")
    ap.add_argument("--profile-before", type=Path, default=None,
                    help="also profile the server code of another checkout's src/ (the code before a change; it must know the "
                         "store schema this checkout writes: an older deepshelf refuses a newer store)")
    docs_option(ap, "--write-docs", help="write its part of docs/benchmarks.md's Service "
                                         "section")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.open_only and args.write_docs:
        raise SystemExit("--open-only measures part of the table: not written to the docs (drop --write-docs)")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    load_before = os.getloadavg()[0]
    before = jitter_probe(args.jitter_seconds)
    log.info("noise probe before: %s (load average %.2f)", probe_text(before), load_before)
    rows, results = [], {}
    for n_items in [] if args.open_only else args.items:
        r, out = run_size(args, n_items, args.workdir)
        rows += r
        results.update(out)
    if args.rate:
        results.update(open_loop_rounds(args, args.workdir))
    after = jitter_probe(args.jitter_seconds)
    load = (load_before, os.getloadavg()[0])
    with open(args.workdir / "serve_wrk-results.pkl", "wb") as f:  # the measurements, should the report fail
        pickle.dump((rows, results, before, after, load), f)
    body = report(args, rows, results, before, after, load)
    print(body)
    if args.write_docs:
        write_in_section("Service", WRK_TITLE, body)
        log.info("wrote the Service section's '%s' part of docs/benchmarks.md", WRK_TITLE)


if __name__ == "__main__":
    main()
