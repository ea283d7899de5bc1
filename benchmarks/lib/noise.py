"""The machine's own latency noise: a fixed piece of Python + numpy work timed at a steady rate, with nothing else
of the benchmark running. A request's (or a training step's) latency can be no steadier than the machine under it,
so the timing benchmarks probe it before and after their runs and print the result beside their numbers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np


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


def jitter_probe_on(cores: set[int] | None, seconds: float) -> dict:
    """`jitter_probe` with this thread on `cores` (where the measured work runs; left as it is when None), its
    affinity restored afterwards."""
    before = os.sched_getaffinity(0)
    if cores:
        os.sched_setaffinity(0, cores)
    try:
        return jitter_probe(seconds)
    finally:
        os.sched_setaffinity(0, before)


def probe_text(j: dict) -> str:
    """One `jitter_probe` result as the benchmarks' docs print it."""
    return (f"median {j['median']:.2f} ms, p99 {j['p99']:.2f} ms ({j['p99'] / j['median']:.1f}x the median), "
            f"max {j['max']:.1f} ms, {j['slow_share']:.1%} of runs over 3x the median, {j['steal_s']:.1f} s stolen")
