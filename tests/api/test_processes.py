"""Real server processes: durability across SIGKILL, and two servers sharing one PostgreSQL store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import ROOT, free_port
from tests.api.conftest import KEY, wait_until_serving


@contextmanager
def server(run: Path, database: str, log: Path, **env_overrides):
    """`deepshelf serve` in a child process; yields (process, base URL) once /health answers."""
    port = free_port()
    env = {**os.environ, "DEEPSHELF_API_KEYS": KEY, "DEEPSHELF_CATALOG_REFRESH_S": "0.1",
           "PYTHONPATH": str(ROOT / "src"), **env_overrides}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "deepshelf", "serve", "--run", str(run), "--database", database,
                                 "--port", str(port), "--log-level", "warning"], env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, f"{base}/health", log, timeout_s=90)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_acknowledged_events_survive_sigkill(runs_dir, tmp_path):
    database = f"sqlite:///{tmp_path / 'durable.db'}"
    acked: list[tuple[str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()
    with server(runs_dir / "knn", database, tmp_path / "server.log") as (proc, base):
        def writer(prefix: str, batch: int):
            with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=10) as http:
                n = 0
                while not stop.is_set():
                    events = [{"user_id": f"{prefix}{n % 7}", "item_id": f"{prefix}-{n}-{j}"} for j in range(batch)]
                    try:
                        r = http.post("/v1/events", json={"events": events})
                    except httpx.HTTPError:
                        return  # the server died mid-request: this batch was never acknowledged
                    if r.status_code == 200:
                        with lock:
                            acked.extend((e["user_id"], e["item_id"]) for e in events)
                    n += 1

        threads = [threading.Thread(target=writer, args=(p, b)) for p, b in (("single", 1), ("batch", 25))]
        for t in threads:
            t.start()
        deadline = time.time() + 30
        while len(acked) < 400 and time.time() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # no shutdown hook, no flush: only what was committed survives
        proc.wait()
        stop.set()
        for t in threads:
            t.join()
    assert len(acked) >= 400
    with server(runs_dir / "knn", database, tmp_path / "server2.log") as (_, base):
        stored = set()
        for user in {u for u, _ in acked}:
            events = httpx.get(f"{base}/v1/users/{user}/events", params={"limit": 1000},
                               headers={"X-API-Key": KEY}).json()["events"]
            stored.update((user, e["item_id"]) for e in events)
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"


def test_two_servers_share_one_postgres(runs_dir, fresh_postgres, tmp_path):
    run = runs_dir / "knn"
    with server(run, fresh_postgres, tmp_path / "a.log") as (_, a), \
            server(run, fresh_postgres, tmp_path / "b.log") as (_, b):
        headers = {"X-API-Key": KEY}
        before = httpx.get(f"{b}/v1/users/shared/recommendations", params={"k": 5}, headers=headers).json()
        assert before["source"] == "fallback"
        r = httpx.post(f"{a}/v1/events", headers=headers,
                       json={"events": [{"user_id": "shared", "item_id": "i51"}, {"user_id": "shared", "item_id": "i52"}]})
        assert r.json() == {"accepted": 2}
        # B sees A's events on its very next request: the history is read from the shared store
        history = httpx.get(f"{b}/v1/users/shared/events", headers=headers).json()["events"]
        assert {e["item_id"] for e in history} == {"i51", "i52"}
        after = httpx.get(f"{b}/v1/users/shared/recommendations", params={"k": 5}, headers=headers).json()
        assert after["source"] == "model"
        assert all(50 <= int(i["item_id"][1:]) < 75 for i in after["items"] if i["reason"] == "also_bought")
        # and the other way round, for the catalogue: an upsert on B is served by A
        assert httpx.put(f"{b}/v1/items/fresh", headers=headers, json={"title": "Fresh", "category": "cat2"}).status_code == 200
        assert httpx.get(f"{a}/v1/items/fresh", headers=headers).json()["title"] == "Fresh"
        deadline = time.time() + 5
        while time.time() < deadline:
            ids = [i["item_id"] for i in httpx.get(f"{a}/v1/users/shared/recommendations",
                                                   headers=headers).json()["items"]]
            if "fresh" in ids:
                break
            time.sleep(0.1)
        assert "fresh" in ids
        stats = httpx.get(f"{a}/v1/stats/events", headers=headers).json()
        assert stats["total"] == 2
