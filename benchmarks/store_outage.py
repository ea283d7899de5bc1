"""PostgreSQL frozen by SIGSTOP under a running service: /health latency throughout, what store-bound requests
answer and how fast while the database is stopped, how long recovery takes after SIGCONT, and whether every
acknowledged event is in the database at the end.

    .venv/bin/python -m benchmarks.store_outage                 # prints the table
    .venv/bin/python -m benchmarks.store_outage --write-docs    # ... and replaces `## Store outage` in docs/benchmarks.md

A throwaway PostgreSQL server (scripts/start-postgres.sh, or DEEPSHELF_TEST_POSTGRES_URL), `deepshelf serve
--workers 2` on it with the default store timeout (2 s), serve_load.py's synthetic run (`lib/shop.py`, small).
Loopback only.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

from benchmarks.lib import ROOT
from benchmarks.lib.cli import docs_option, parser, publish
from benchmarks.lib.loadgen import KEY, free_port
from benchmarks.lib.mdsection import machine
from benchmarks.lib.shop import build

log = logging.getLogger("store_outage")


def postgres() -> str:
    url = os.environ.get("DEEPSHELF_TEST_POSTGRES_URL")
    if not url:
        out = subprocess.run([str(ROOT / "scripts" / "start-postgres.sh"), "--export"], capture_output=True,
                             text=True, timeout=300, check=True).stdout.strip().splitlines()[-1]
        exports = dict(w.split("=", 1) for w in shlex.split(out)[1:])
        url = exports["DEEPSHELF_TEST_POSTGRES_URL"]
    import psycopg

    name = f"outage_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return url.rpartition("/")[0] + "/" + name


class Probe(threading.Thread):
    """Sends one request after another, recording (send time, seconds, status) until stopped."""

    def __init__(self, base: str, make, name: str):
        super().__init__(daemon=True, name=name)
        self.client = httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=30)
        self.make, self.records, self.stop = make, [], threading.Event()

    def run(self):
        n = 0
        while not self.stop.is_set():
            method, path, body = self.make(n)
            t = time.monotonic()
            try:
                status = self.client.request(method, path, json=body).status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            self.records.append((t, time.monotonic() - t, status, n))
            n += 1
            time.sleep(0.02)


def summary(records, lo: float, hi: float) -> str:
    rows = [r for r in records if lo <= r[0] < hi]
    if not rows:
        return "-"
    lat = np.array([r[1] for r in rows]) * 1000
    counts: dict = {}
    for r in rows:
        counts[r[2]] = counts.get(r[2], 0) + 1
    answers = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=str))
    return f"{answers} | {np.percentile(lat, 50):.0f} | {lat.max():.0f}"


def main() -> None:
    ap = parser(__doc__, whole=True)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "deepshelf-overload")
    ap.add_argument("--stopped-s", type=float, default=8.0)
    docs_option(ap, "--write-docs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from tests.api.test_resilience import frozen, postmaster_pid

    run, _ = build(args.workdir, 20_000, 2_000, 20, 32)
    database = postgres()
    port = free_port()
    env = {**os.environ, "DEEPSHELF_API_KEYS": KEY, "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.Popen([sys.executable, "-m", "deepshelf", "serve", "--run", str(run), "--database", database,
                               "--port", str(port), "--workers", "2", "--log-level", "error"], env=env,
                              stdout=(args.workdir / "outage.log").open("ab"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.2)
        health = Probe(base, lambda n: ("GET", "/health", None), "health")
        reads = Probe(base, lambda n: ("GET", f"/v1/users/s{n % 2000}/recommendations?k=10", None), "reads")
        writer_id = uuid.uuid4().hex[:6]
        writes = Probe(base, lambda n: ("POST", "/v1/events", {"events": [
            {"user_id": f"w{writer_id}", "item_id": f"p{n}", "type": "view"}]}), "writes")
        probes = (health, reads, writes)
        t0 = time.monotonic()
        for p in probes:
            p.start()
        time.sleep(3)
        pid = postmaster_pid(database)
        t_stop = time.monotonic()
        with frozen(pid):
            time.sleep(args.stopped_s)
        t_cont = time.monotonic()
        time.sleep(8)
        for p in probes:
            p.stop.set()
        for p in probes:
            p.join(60)
        t_end = time.monotonic()
        recovered = min((r[0] + r[1] for r in reads.records if r[0] >= t_cont and r[2] == 200), default=float("nan"))
        acked = {f"p{r[3]}" for r in writes.records if r[2] == 200}
        import psycopg

        with psycopg.connect(database) as conn:
            stored = {row[0] for row in conn.execute("SELECT item_id FROM events WHERE user_id = %s",
                                                     (f"w{writer_id}",))}
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)
    health_max = max(r[1] for r in health.records) * 1000
    lines = [f"PostgreSQL stopped with SIGSTOP (postmaster and every backend) for {args.stopped_s:.0f} s under "
             "`deepshelf serve --workers 2` (store timeout 2 s); three clients, each sending one request after the "
             "other: /health, `GET /v1/users/{id}/recommendations`, `POST /v1/events` (one event).", "",
             "| client | phase | answers | p50 ms | max ms |", "|---|---|---|---:|---:|"]
    for p in probes:
        for phase, lo, hi in (("before", t0, t_stop), ("stopped", t_stop, t_cont), ("after SIGCONT", t_cont, t_end)):
            lines.append(f"| {p.name} | {phase} | {summary(p.records, lo, hi)} |")
    lines += ["", f"- /health slowest answer over the whole run: {health_max:.1f} ms",
              f"- first 200 from a store-bound request {recovered - t_cont:.2f} s after SIGCONT",
              f"- acknowledged events: {len(acked)}; in the database afterwards: {len(acked & stored)} "
              f"(lost: {len(acked - stored)}; stored though answered 503: {len(stored - acked)})", "",
              f"Machine: {machine()} (shared with other jobs). Script: benchmarks/store_outage.py."]
    publish("\n".join(lines), args, "Store outage")


if __name__ == "__main__":
    main()
