"""The load generator of `serve_load.py` and the processes it measures: a keep-alive HTTP/1.1 client, open- and
closed-loop request drivers, the servers under test (`deepshelf serve`, `bare_app.py`) started and stopped, CPU
pinning (`taskset`) and CPU time (Linux /proc), kept apart from the benchmark's shop (`shop.py`), report and the
machine's own noise (`noise.py`)."""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.lib import ROOT

KEY = "bench-key"  # private: the stats calls (and the shop's back office)
PUBLIC_KEY = "bench-public-key"  # what a storefront holds


# ---- a minimal keep-alive HTTP/1.1 client (cheap per request, so the generator leaves CPU to the server) -------
class Connection:
    def __init__(self, host: str, port: int, key: str):
        self.host, self.port, self.key = host, port, key
        self.reader = self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: bytes | None = None,
                      headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nX-API-Key: {self.key}\r\n"
        for name, value in (headers or {}).items():  # e.g. a shopper token
            head += f"{name}: {value}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)


def own_cpu_s() -> float:
    """User + system CPU seconds of this process (the load generator), all its threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def summary(lat_ms, statuses: Counter, elapsed: float, cpu_s: float) -> dict:
    lat = np.array(lat_ms) if len(lat_ms) else np.zeros(1)
    errors = sum(n for code, n in statuses.items() if code != 200)
    return {"requests": len(lat_ms), "errors": errors, "shed_503": statuses.get(503, 0),
            "statuses": dict(statuses), "rps": len(lat_ms) / elapsed,
            "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)), "max": float(lat.max()),
            "gen_cpu_ms": cpu_s * 1000 / max(1, len(lat_ms)), "gen_cpu_share": cpu_s / elapsed}


async def open_loop(host, port, key, make, rate: float, duration: float, conns: int) -> dict:
    """Send `make()` requests at `rate`/s for `duration` s over up to `conns` connections. Latency counts from each
    request's scheduled send time. Also per HTTP method (`by_method`: the mixed phase's reads and writes), the
    status counts (503 = shed by the server) and this process's CPU per request."""
    free: asyncio.Queue = asyncio.Queue()
    for _ in range(conns):
        c = Connection(host, port, key)
        await c.open()
        free.put_nowait(c)
    latencies: dict[str, list] = {}
    statuses: dict[str, Counter] = {}

    async def one(scheduled: float, req):
        conn = await free.get()
        try:
            status, _ = await conn.request(*req)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            status = 0  # connection lost
            conn = Connection(host, port, key)
            await conn.open()
        finally:
            free.put_nowait(conn)
        latencies.setdefault(req[0], []).append((time.perf_counter() - scheduled) * 1000)
        statuses.setdefault(req[0], Counter())[status] += 1

    cpu = own_cpu_s()
    start = time.perf_counter() + 0.05
    tasks, i = [], 0
    while True:
        scheduled = start + i / rate
        if scheduled > start + duration:
            break
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled, make())))
        i += 1
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    cpu = own_cpu_s() - cpu
    while not free.empty():
        free.get_nowait().writer.close()
    result = summary([v for m in latencies.values() for v in m], sum(statuses.values(), Counter()), elapsed, cpu)
    result["by_method"] = {m: summary(latencies[m], statuses[m], elapsed, 0.0) for m in latencies}
    return result


async def closed_loop(host, port, key, make, duration: float, conns: int, per_request: int) -> dict:
    """As many requests as `conns` connections can do back to back: the ingestion rate."""
    end = time.perf_counter() + duration
    latencies, statuses = [], Counter()

    async def worker():
        c = Connection(host, port, key)
        await c.open()
        while time.perf_counter() < end:
            t = time.perf_counter()
            status, _ = await c.request(*make())
            latencies.append((time.perf_counter() - t) * 1000)
            statuses[status] += 1
        c.writer.close()

    cpu = own_cpu_s()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conns)))
    elapsed = time.perf_counter() - start
    result = summary(latencies, statuses, elapsed, own_cpu_s() - cpu)
    result["events_per_s"] = statuses.get(200, 0) * per_request / elapsed
    return result


# ---- CPU pinning: the load generator on its own core, the server on the others ----------------------------------
def core_split() -> tuple[set[int], set[int]] | None:
    """(load generator's cores, server's cores) when `taskset` exists and there are at least 2 usable cores."""
    cores = sorted(os.sched_getaffinity(0))
    if shutil.which("taskset") is None or len(cores) < 2:
        return None
    return {cores[0]}, set(cores[1:])


def taskset_prefix(cores: set[int] | None) -> list[str]:
    return ["taskset", "-c", ",".join(map(str, sorted(cores)))] if cores else []


def pin_self(cores: set[int]) -> None:
    """Pin this process, every thread of it, with `taskset -a -p`."""
    subprocess.run(["taskset", "-a", "-cp", ",".join(map(str, sorted(cores))), str(os.getpid())], check=True,
                   stdout=subprocess.DEVNULL)


# ---- servers -----------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(extra_env: dict) -> dict:
    # trending refresh, impressions, shedding: the server's defaults (a shop's settings), only the keys are set
    return {**os.environ, "DEEPSHELF_API_KEYS": KEY, "DEEPSHELF_PUBLIC_KEYS": PUBLIC_KEY,
            "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", **extra_env}


def launch(cmd: list[str], port: int, env: dict, server_log: Path) -> tuple:
    """Start `cmd` and wait until its /health answers: (process, start-up seconds)."""
    import httpx

    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=open(server_log, "wb"), stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {server_log.read_text()[-3000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).raise_for_status()
            break
        except httpx.HTTPError:
            if time.time() > deadline:
                stop_server(proc)
                raise SystemExit("server did not start in 10 minutes") from None
            time.sleep(0.2)
    return proc, time.perf_counter() - t


def start_server(run: Path, database: str, workers: int, server_log: Path, extra_env: dict,
                 cores: set[int] | None = None) -> tuple:
    """`deepshelf serve` on a free loopback port (on `cores` via taskset), once /health answers:
    (process, port, start-up seconds)."""
    port = free_port()
    cmd = taskset_prefix(cores) + [sys.executable, "-m", "deepshelf", "serve", "--run", str(run), "--database",
                                   database, "--port", str(port), "--log-level", "warning", "--workers", str(workers)]
    proc, startup = launch(cmd, port, server_env(extra_env), server_log)
    return proc, port, startup


def start_bare(workers: int, server_log: Path, cores: set[int] | None) -> tuple:
    """bare_app.py under the same uvicorn settings, workers, environment and cores."""
    port = free_port()
    cmd = taskset_prefix(cores) + [sys.executable, "-m", "benchmarks.lib.bare_app",
                                   "--port", str(port), "--workers", str(workers)]
    # the repository beside src/ on its path: the bare app is a module of this package
    proc, startup = launch(cmd, port, server_env({"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}),
                           server_log)
    return proc, port, startup


def stop_server(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def server_stats(port: int) -> dict:
    """The server's own latency view per (method, route), from `/v1/stats/latency` (one worker's)."""
    import httpx

    rows = httpx.get(f"http://127.0.0.1:{port}/v1/stats/latency", headers={"X-API-Key": KEY}, timeout=10)
    rows.raise_for_status()
    return {(r["method"], r["route"]): r for r in rows.json()["routes"]}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the server process and its worker processes (Linux /proc)."""
    total = 0.0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    tick = os.sysconf("SC_CLK_TCK")
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total
