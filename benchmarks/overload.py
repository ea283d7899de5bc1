"""Overload and stalled clients: a burst of 2,000 requests over 1,000 connections at once against one server
process, with this repository's shedding (DEEPSHELF_MAX_CONCURRENT_REQUESTS), with uvicorn's own
`limit_concurrency` instead, and with neither; then connections that send half a header, straight to the server and
through deploy/nginx.conf.

    .venv/bin/python -m benchmarks.overload                 # prints the tables
    .venv/bin/python -m benchmarks.overload --write-docs    # ... and replaces `## Overload` in docs/benchmarks.md

The shop is serve_load.py's synthetic one (`lib/shop.py`), small (this measures admission, not retrieval).
Loopback only; each phase is bounded in time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.lib import ROOT
from benchmarks.lib.cli import docs_option, parser, publish
from benchmarks.lib.loadgen import KEY, Connection, free_port
from benchmarks.lib.mdsection import machine
from benchmarks.lib.shop import build

log = logging.getLogger("overload")

SERVER = """
import sys, uvicorn
from deepshelf.api.app import create_app
from deepshelf.engine.settings import Settings
limit = int(sys.argv[2]) or None
from deepshelf.api.idle import HeaderTimeout
uvicorn.run(create_app(Settings()), host="127.0.0.1", port=int(sys.argv[1]), log_level="error",
            limit_concurrency=limit, backlog=4096, http=HeaderTimeout)  # deepshelf serve's protocol
"""


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def start(run: Path, database: str, port: int, shed: int, uvicorn_limit: int, logf: Path) -> subprocess.Popen:
    env = {**os.environ, "DEEPSHELF_RUN": str(run), "DEEPSHELF_DATABASE": database, "DEEPSHELF_API_KEYS": KEY,
           "DEEPSHELF_MAX_CONCURRENT_REQUESTS": str(shed), "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(uvicorn_limit)], env=env,
                            stdout=logf.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(logf.read_text()[-2000:])
            time.sleep(0.2)


async def burst(port: int, conns: int, per_conn: int, n_users: int) -> dict:
    """`conns` connections opened at once, each sending `per_conn` requests one after the other."""
    statuses: dict[str, int] = {}
    served, shed = [], []

    async def one(c: int):
        conn = Connection("127.0.0.1", port, KEY)
        try:
            await asyncio.wait_for(conn.open(), 30)
            for r in range(per_conn):
                t = time.perf_counter()
                status, _ = await asyncio.wait_for(
                    conn.request("GET", f"/v1/users/s{(c * per_conn + r) % n_users}/recommendations?k=10"), 60)
                (served if status == 200 else shed).append((time.perf_counter() - t) * 1000)
                statuses[str(status)] = statuses.get(str(status), 0) + 1
        except (ConnectionError, asyncio.IncompleteReadError, OSError, asyncio.TimeoutError) as exc:
            statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
        finally:
            if conn.writer is not None:
                conn.writer.close()

    health, done = [], asyncio.Event()

    async def liveness():
        """A liveness probe on its own connection, every 50 ms while the burst lasts (/health is never shed)."""
        conn = Connection("127.0.0.1", port, KEY)
        await conn.open()
        try:
            while not done.is_set():
                t = time.perf_counter()
                await asyncio.wait_for(conn.request("GET", "/health"), 60)
                health.append((time.perf_counter() - t) * 1000)
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.IncompleteReadError, OSError, asyncio.TimeoutError):
            health.append(float("inf"))
        finally:
            conn.writer.close()

    probe = asyncio.create_task(liveness())
    t = time.perf_counter()
    await asyncio.gather(*(one(c) for c in range(conns)))
    wall = time.perf_counter() - t
    done.set()
    await probe
    pct = lambda xs, q: float(np.percentile(xs, q)) if xs else float("nan")  # noqa: E731
    return {"wall_s": wall, "statuses": statuses, "served": len(served),
            "served_p50": pct(served, 50), "served_p99": pct(served, 99), "shed_p99": pct(shed, 99),
            "health_p50": pct(health, 50), "health_max": max(health, default=float("nan"))}


def half_headers(port: int, n: int, wait_s: float) -> tuple[int, float]:
    """`n` connections each send half a request header; returns (still open after `wait_s`, median seconds until
    the others were closed)."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Half: ")
        s.setblocking(False)
        socks.append(s)
    t0, closed = time.monotonic(), {}
    while time.monotonic() - t0 < wait_s and len(closed) < n:
        for i, s in enumerate(socks):
            if i in closed:
                continue
            try:
                if s.recv(65536) == b"":
                    closed[i] = time.monotonic() - t0
            except BlockingIOError:
                pass
            except OSError:
                closed[i] = time.monotonic() - t0
        time.sleep(0.05)
    for s in socks:
        s.close()
    return n - len(closed), float(np.median(list(closed.values()))) if closed else float("nan")


def main() -> None:
    ap = parser(__doc__, whole=True)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "deepshelf-overload")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--per-conn", type=int, default=2)
    ap.add_argument("--limit", type=int, default=32, help="requests in progress per process")
    docs_option(ap, "--write-docs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    n_items, n_users = 20_000, 2_000
    run, database = build(args.workdir, n_items, n_users, 20, 32)
    rows = []
    for name, shed, uv in (("deepshelf shedding (max_concurrent_requests)", args.limit, 0),
                           ("uvicorn limit_concurrency", 100_000, args.limit),
                           ("neither", 100_000, 0)):
        port = free_port()
        proc = start(run, database, port, shed, uv, args.workdir / "server.log")
        try:
            asyncio.run(burst(port, 16, 5, n_users))  # warm-up
            before = rss_mb(proc.pid)
            result = asyncio.run(burst(port, args.conns, args.per_conn, n_users))
            after = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
        log.info("%s: %s", name, result)
        rows.append((name, result, before, after))
    total = args.conns * args.per_conn
    lines = [f"A burst of {total:,} `GET /v1/users/{{id}}/recommendations` over {args.conns:,} connections opened "
             f"at once ({args.per_conn} requests each, one after the other), one server process, a bound of "
             f"{args.limit} requests; {n_items:,} items, SQLite store. Latency from each request's send; a liveness "
             "probe (`GET /health`, its own connection, every 50 ms) during the burst.", "",
             "| admission | answers | served | served p50 ms | served p99 ms | 503 p99 ms | /health p50 / max ms | "
             "wall s | RSS before → after (peak) MB |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, r, before, after in rows:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))
        lines.append(f"| {name} | {answers} | {r['served']} | {r['served_p50']:.0f} | {r['served_p99']:.0f} | "
                     f"{r['shed_p99']:.0f} | {r['health_p50']:.0f} / {r['health_max']:.0f} | {r['wall_s']:.1f} | {before[0]:.0f} → {after[0]:.0f} ({after[1]:.0f}) |")

    # Half a header: the server alone, then nginx (deploy/nginx.conf, client_header_timeout 10s) in front.
    port = free_port()
    proc = start(run, database, port, args.limit, 0, args.workdir / "server.log")
    try:
        open_direct, direct_after = half_headers(port, 50, 15.0)
        if shutil.which("nginx"):
            from tests.api.test_resilience import nginx

            front = free_port()
            folder = Path(tempfile.mkdtemp(prefix="deepshelf-nginx-"))
            with nginx(folder, front, port):
                open_nginx, closed_after = half_headers(front, 50, 15.0)
            nginx_text = f"{open_nginx} of 50 still open after 15 s; the others closed after {closed_after:.1f} s (median)"
        else:
            nginx_text = "not measured (nginx not installed)"
    finally:
        proc.terminate()
        proc.wait(30)
    lines += ["", "Connections sending half a request header (50 at once):", "",
              f"- straight to `deepshelf serve`'s uvicorn (its own header timeout, `header_timeout_s` 10 s: "
              f"api/idle.py): {open_direct} of 50 still open after 15 s; the others closed after "
              f"{direct_after:.1f} s (median)",
              f"- through deploy/nginx.conf (client_header_timeout 10s): {nginx_text}", "",
              f"Machine: {machine()} (shared with other jobs). Script: benchmarks/overload.py."]
    publish("\n".join(lines), args, "Overload")


if __name__ == "__main__":
    main()
