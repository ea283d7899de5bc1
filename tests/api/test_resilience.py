"""A slow or stopped store, overload and stalled clients: /health keeps answering, store-bound requests answer
503 with Retry-After instead of hanging, /ready tells the truth, excess requests are shed, stalled bodies are cut,
and deploy/nginx.conf in front of several workers closes half-sent headers."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from deepshelf.api.app import create_app
from deepshelf.api.shedding import ShedLoad
from deepshelf.storage import StoreUnavailable, open_store
from tests.conftest import ROOT, free_port
from tests.api.conftest import KEY, auth, make_settings, wait_until_serving

WAIT = 60  # generous bound on a thread that must finish; a hang fails the test instead of stalling the suite


@contextmanager
def blocked_reads(store, method: str = "recent_events"):
    """Make `store.<method>` block until released; yields (entered, release) events."""
    entered, release = threading.Event(), threading.Event()
    original = getattr(store, method)

    def blocking(*args, **kwargs):
        entered.set()
        release.wait(WAIT)
        return original(*args, **kwargs)

    setattr(store, method, blocking)
    try:
        yield entered, release
    finally:
        release.set()
        setattr(store, method, original)


def test_health_and_docs_answer_while_a_store_call_blocks(run_link, tmp_path):
    app = create_app(make_settings(run_link, f"sqlite:///{tmp_path / 's.db'}"))
    with TestClient(app) as client, ThreadPoolExecutor(4) as pool:
        store = app.state.service.store
        store.embedded = False  # a networked store (PostgreSQL): its reads never run on the event loop
        with blocked_reads(store) as (entered, release):
            stuck = pool.submit(client.get, "/v1/users/u0_1/recommendations", headers=auth())
            assert entered.wait(WAIT)
            # On the event loop these would wait for the stuck request; off it they answer at once.
            health = pool.submit(client.get, "/health").result(WAIT)
            docs = pool.submit(client.get, "/openapi.json").result(WAIT)
            assert not stuck.done()
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert docs.status_code == 200
            release.set()
            assert stuck.result(WAIT).status_code == 200


@pytest.mark.parametrize("embedded", [True, False])
def test_an_embedded_stores_keyed_reads_run_on_the_event_loop(run_link, tmp_path, monkeypatch, embedded):
    """SQLite's keyed reads (a shopper's history, product cards) are made on the loop, without the thread-pool
    hop; a networked store's go to the thread pool. The answers are the same either way."""
    from deepshelf.api.routes import recommendations

    hops = []
    original = recommendations.run_in_threadpool

    async def counted(fn, *args):
        hops.append(getattr(fn, "__name__", "?"))
        return await original(fn, *args)

    monkeypatch.setattr(recommendations, "run_in_threadpool", counted)
    app = create_app(make_settings(run_link, f"sqlite:///{tmp_path / 's.db'}"))
    with TestClient(app) as client:
        service = app.state.service
        service.store.embedded = embedded
        service.settings.catalog_refresh_s = 3600.0  # no catalogue refresh due during the test (that one always hops)
        service.runs.state.view.refresh(max_age_s=0)
        hops.clear()
        first = client.get("/v1/users/u0_1/recommendations?details=true", headers=auth())  # history and cards read
        assert first.status_code == 200 and first.json()["items"]
        assert ("title" in first.json()["items"][0]) and (hops == [] if embedded else hops == ["whole"])
        service.shoppers.clear()
        hops.clear()
        again = client.get("/v1/users/u0_1/recommendations?details=true", headers=auth())  # history read, cards held
        assert [i["item_id"] for i in again.json()["items"]] == [i["item_id"] for i in first.json()["items"]]
        assert hops == ([] if embedded else ["whole"])


def test_store_timeout_answers_503_with_retry_after(run_link, tmp_path):
    """A writer holding SQLite's lock past the store timeout: the write answers 503 + Retry-After, nothing is
    stored, and the same write succeeds once the lock is gone."""
    db = tmp_path / "s.db"
    app = create_app(make_settings(run_link, f"sqlite:///{db}", store_timeout_s=0.2, retry_after_s=3))
    body = {"events": [{"user_id": "late", "item_id": "i1", "type": "view"}]}
    with TestClient(app) as client:
        import sqlite3

        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            r = client.post("/v1/events", json=body, headers=auth())
            assert r.status_code == 503 and r.headers["retry-after"] == "3"
            assert "nothing was stored" in r.json()["detail"]  # the lock was never taken: the outcome is known
            assert "sqlite" not in r.text.lower() and str(db) not in r.text
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert client.get("/v1/users/late/events", headers=auth()).json()["events"] == []
        assert client.post("/v1/events", json=body, headers=auth()).status_code == 200


def test_sqlite_statement_past_the_timeout_is_interrupted(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 's.db'}", timeout_s=0.2)
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"
    with pytest.raises(StoreUnavailable):
        store._read(endless)
    assert store.count_events() == 0  # the connection is usable afterwards
    store.close()


def test_ready_reports_store_and_run(run_link, tmp_path):
    database = f"sqlite:///{tmp_path / 's.db'}"
    with TestClient(create_app(make_settings(run_link, database))) as client:
        r = client.get("/ready")
        assert r.status_code == 200 and r.json()["ready"] and r.json()["model_version"]
        store = client.app.state.service.store

        def down():
            raise StoreUnavailable("the database did not answer")

        store.schema_version, original = down, store.schema_version
        try:
            r = client.get("/ready")
            assert r.status_code == 503 and "retry-after" in r.headers
            assert r.json()["store_ok"] is False and r.json()["ready"] is False
            assert client.get("/health").status_code == 200  # liveness is not readiness
        finally:
            store.schema_version = original
    with TestClient(create_app(make_settings(None, database))) as client:  # no run loaded
        r = client.get("/ready")
        assert r.status_code == 503 and r.json()["store_ok"] is True and r.json()["model_version"] is None


def test_requests_beyond_the_bound_are_shed(run_link, tmp_path):
    app = create_app(make_settings(run_link, f"sqlite:///{tmp_path / 's.db'}", max_concurrent_requests=2,
                                   retry_after_s=2))
    with TestClient(app) as client, ThreadPoolExecutor(4) as pool:
        store = app.state.service.store
        store.embedded = False  # requests held in the thread pool by a networked store's reads
        with blocked_reads(store) as (entered, release):
            first = pool.submit(client.get, "/v1/users/u0_1/recommendations", headers=auth())
            assert entered.wait(WAIT)
            entered.clear()
            second = pool.submit(client.get, "/v1/users/u1_1/recommendations", headers=auth())
            assert entered.wait(WAIT)
            shed = client.get("/v1/popular", headers=auth())
            assert shed.status_code == 503 and shed.headers["retry-after"] == "2"
            assert client.get("/health").status_code == 200  # liveness is never shed
            release.set()
            assert first.result(WAIT).status_code == 200 and second.result(WAIT).status_code == 200
        assert client.get("/v1/popular", headers=auth()).status_code == 200  # the slots are free again


def test_stalled_body_is_answered_408_and_closed():
    async def app(scope, receive, send):  # reads the body like FastAPI does
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def scenario():
        sent = []
        first = True

        async def receive():
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": b"{\"ev", "more_body": True}
            await asyncio.sleep(3600)  # the client never sends the rest

        async def send(message):
            sent.append(message)

        shed = ShedLoad(app, limit=4, retry_after_s=1, body_timeout_s=0.05)
        scope = {"type": "http", "path": "/v1/events", "headers": [(b"content-length", b"100")]}
        await asyncio.wait_for(shed(scope, receive, send), WAIT)
        return sent, shed.active

    sent, active = asyncio.run(scenario())
    start = sent[0]
    assert start["status"] == 408 and (b"connection", b"close") in start["headers"]
    assert len(sent) == 2 and active == 0  # the app's own answer is dropped; the slot is free


# ---- PostgreSQL frozen by SIGSTOP -----------------------------------------------------------------------------
def postmaster_pid(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        data = conn.execute("SHOW data_directory").fetchone()[0]
    return int(Path(data, "postmaster.pid").read_text().split()[0])


@contextmanager
def frozen(postmaster: int):
    """SIGSTOP the server: the postmaster first (so it forks no one new), then every child it has (backends,
    checkpointer ...); SIGCONT all of them on the way out."""
    os.kill(postmaster, signal.SIGSTOP)
    stopped = [postmaster]
    try:
        for task in Path(f"/proc/{postmaster}/task").iterdir():
            for pid in map(int, (task / "children").read_text().split()):
                try:
                    os.kill(pid, signal.SIGSTOP)
                    stopped.append(pid)
                except ProcessLookupError:
                    pass
        yield
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


def test_stopped_postgres_is_isolated(run_link, fresh_postgres):
    try:
        pid = postmaster_pid(fresh_postgres)
        os.kill(pid, 0)
    except (OSError, ValueError, PermissionError) as exc:
        pytest.skip(f"cannot find the PostgreSQL server's processes to stop: {exc}")
    settings = make_settings(run_link, fresh_postgres, store_timeout_s=0.5, store_connections=4)
    with TestClient(create_app(settings)) as client, ThreadPoolExecutor(8) as pool:
        ok = {"events": [{"user_id": "before", "item_id": "i1", "type": "view"}]}
        assert client.post("/v1/events", json=ok, headers=auth()).status_code == 200
        with frozen(pid):
            reads = [pool.submit(client.get, f"/v1/users/u0_{n}/recommendations", headers=auth()) for n in range(6)]
            write = pool.submit(client.post, "/v1/events", headers=auth(),
                                json={"events": [{"user_id": "during", "item_id": "i1", "type": "view"}]})
            health = client.get("/health")
            assert health.status_code == 200
            ready = client.get("/ready")
            assert ready.status_code == 503 and ready.json()["store_ok"] is False
            for r in [f.result(WAIT) for f in reads] + [write.result(WAIT)]:
                assert r.status_code == 503, r.text  # each store-bound request ends, none hangs or fails with 500
                assert "retry-after" in r.headers
        # recovered: every pooled connection that was cut is replaced
        deadline = time.monotonic() + WAIT
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get("/v1/users/u0_1/recommendations", headers=auth()).status_code == 200
        assert client.post("/v1/events", json=ok, headers=auth()).status_code == 200
        assert len(client.get("/v1/users/before/events", headers=auth()).json()["events"]) == 2


# ---- the documented deployment: deploy/nginx.conf in front of two workers -------------------------------------
def render_nginx(folder: Path, listen: int, upstream: int, header_timeout_s: int | None = None) -> Path:
    """deploy/nginx.conf with its ports (and optionally the header timeout) changed, wrapped in a main config
    that keeps every file nginx writes inside `folder`."""
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    site = site.replace("listen 80;", f"listen 127.0.0.1:{listen};").replace("127.0.0.1:8000", f"127.0.0.1:{upstream}")
    if header_timeout_s is not None:
        site = re.sub(r"client_header_timeout \d+s;", f"client_header_timeout {header_timeout_s}s;", site)
    (folder / "deepshelf.conf").write_text(site)
    temp = "".join(f"{kind}_temp_path {folder / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                         "scgi"))
    main = folder / "nginx.conf"
    main.write_text(("user root;\n" if os.geteuid() == 0 else "") +
                    f"pid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} warn;\nworker_processes 1;\n"
                    f"events {{ worker_connections 4096; }}\n"
                    f"http {{\naccess_log off;\n{temp}include {folder / 'deepshelf.conf'};\n}}\n")
    return main


@contextmanager
def nginx(folder: Path, listen: int, upstream: int, header_timeout_s: int | None = None):
    main = render_nginx(folder, listen, upstream, header_timeout_s)
    proc = subprocess.Popen(["nginx", "-p", str(folder), "-c", str(main), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + WAIT
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"nginx exited: {proc.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{listen}"
    finally:
        proc.terminate()
        proc.wait(WAIT)


@contextmanager
def workers(run: Path, database: str, log: Path, n: int, port: int):
    env = {**os.environ, "DEEPSHELF_API_KEYS": KEY, "PYTHONPATH": str(ROOT / "src")}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "deepshelf", "serve", "--run", str(run), "--database",
                                 database, "--port", str(port), "--workers", str(n), "--log-level", "warning"],
                                env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        wait_until_serving(proc, f"http://127.0.0.1:{port}/ready", log, timeout_s=120)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.skipif(shutil.which("nginx") is None,
                    reason="nginx is not installed (apt-get install nginx; .ci/run installs it)")
def test_nginx_deployment_with_two_workers(runs_dir, tmp_path):
    from tests.api.conftest import seed_store

    database = f"sqlite:///{tmp_path / 'store.db'}"
    seed_store(database)
    backend, front = free_port(), free_port()
    with workers(runs_dir / "knn", database, tmp_path / "serve.log", 2, backend), \
            nginx(tmp_path, front, backend, header_timeout_s=1) as base:
        with httpx.Client(base_url=base, headers=auth(), timeout=WAIT) as http:
            assert http.get("/ready").status_code == 200
            r = http.post("/v1/events", json={"events": [{"user_id": "n1", "item_id": "i1", "type": "view"}]})
            assert r.status_code == 200
            for _ in range(10):  # served by either worker, through nginx's keep-alive connections
                assert http.get("/v1/users/n1/recommendations?k=5").status_code == 200
            assert http.post("/v1/events", content=b"x" * 2_000_000,
                             headers={"content-type": "application/json"}).status_code == 413
        # Half a header: nginx closes the connection after client_header_timeout (uvicorn alone never would).
        with socket.create_connection(("127.0.0.1", front), timeout=WAIT) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Half: ")
            received = b""
            while chunk := sock.recv(4096):
                received += chunk
            assert not received or received.startswith(b"HTTP/1.1 408")
