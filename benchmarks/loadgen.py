"""The load generator of `serve_load.py`: a keep-alive HTTP/1.1 client, open- and closed-loop request drivers,
and the machine's own noise and the server's CPU time (Linux /proc), kept apart from the benchmark's shop and
report."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np


# ---- a minimal keep-alive HTTP/1.1 client (cheap per request, so the generator leaves CPU to the server) -------
class Connection:
    def __init__(self, host: str, port: int, key: str):
        self.host, self.port, self.key = host, port, key
        self.reader = self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nX-API-Key: {self.key}\r\n"
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


async def open_loop(host, port, key, make, rate: float, duration: float, conns: int) -> dict:
    """Send `make()` requests at `rate`/s for `duration` s over up to `conns` connections."""
    free: asyncio.Queue = asyncio.Queue()
    for _ in range(conns):
        c = Connection(host, port, key)
        await c.open()
        free.put_nowait(c)
    latencies, errors = [], 0

    async def one(scheduled: float, req):
        nonlocal errors
        conn = await free.get()
        try:
            status, _ = await conn.request(*req)
            if status != 200:
                errors += 1
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            errors += 1
            conn = Connection(host, port, key)
            await conn.open()
        finally:
            free.put_nowait(conn)
        latencies.append(time.perf_counter() - scheduled)

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
    while not free.empty():
        free.get_nowait().writer.close()
    lat = np.array(latencies) * 1000
    return {"requests": len(lat), "errors": errors, "rps": len(lat) / elapsed,
            "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)), "max": float(lat.max())}


async def closed_loop(host, port, key, make, duration: float, conns: int, per_request: int) -> dict:
    """As many requests as `conns` connections can do back to back: the ingestion rate."""
    end = time.perf_counter() + duration
    latencies, errors = [], 0

    async def worker():
        nonlocal errors
        c = Connection(host, port, key)
        await c.open()
        while time.perf_counter() < end:
            t = time.perf_counter()
            status, _ = await c.request(*make())
            latencies.append(time.perf_counter() - t)
            errors += status != 200
        c.writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conns)))
    elapsed = time.perf_counter() - start
    lat = np.array(latencies) * 1000
    ok = len(lat) - errors
    return {"requests": len(lat), "errors": errors, "rps": len(lat) / elapsed, "events_per_s": ok * per_request / elapsed,
            "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)), "max": float(lat.max())}


# ---- the machine's own latency noise ---------------------------------------------------------------------------
def steal_ticks() -> int:
    """CPU time the hypervisor gave to others while this VM wanted it (/proc/stat 'steal', clock ticks)."""
    try:
        return int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[8])
    except (OSError, IndexError, ValueError):
        return 0


def jitter_probe(seconds: float, rate: float = 150.0) -> dict:
    """Time a fixed piece of Python + numpy work `rate` times a second, with nothing else of ours running.

    A request's latency can be no steadier than the machine under it: if this fixed work has a p99 several times
    its median, the server's p99 inherits that factor whatever the server does.
    """
    data = np.random.default_rng(0).random(5000)

    def work():
        total = 0
        for i in range(3000):
            total += i * i
        return total + float(np.sort(data).sum())

    times, steal = [], steal_ticks()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        work()
        times.append((time.perf_counter() - t) * 1000)
        time.sleep(max(0.0, 1 / rate - (time.perf_counter() - t)))
    ms = np.array(times)
    return {"median": float(np.median(ms)), "p99": float(np.percentile(ms, 99)), "max": float(ms.max()),
            "slow_share": float((ms > 3 * np.median(ms)).mean()),
            "steal_s": (steal_ticks() - steal) / os.sysconf("SC_CLK_TCK")}


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
