"""Shared fixtures: small synthetic data with planted structure, and the real datasets folder."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DEEPSHELF_DATA_DIR", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads: implicit wants single-threaded BLAS

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from deepshelf.data.interactions import Interactions  # noqa: E402


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now (for a child server or process group)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def planted_clusters(n_groups: int = 4, users_per_group: int = 60, items_per_group: int = 25,
                     events_per_user: int = 12, seed: int = 0) -> Interactions:
    """Users of group g only touch items of group g (plus nothing else): any collaborative model must
    recommend a user items of their own group. Item popularity within a group is skewed (Zipf-like)."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    p = 1.0 / np.arange(1, items_per_group + 1)
    p /= p.sum()
    t = 0
    for g in range(n_groups):
        for u in range(users_per_group):
            chosen = rng.choice(items_per_group, size=events_per_user, replace=False, p=p) + g * items_per_group
            for i in chosen:
                users.append(f"u{g}_{u}")
                items.append(f"i{i}")
                times.append(t)
                t += 1
    return Interactions.from_ids(np.array(users), np.array(items), timestamp=np.array(times))


def group_of_item(inter: Interactions, items_per_group: int = 25) -> np.ndarray:
    """Planted group of each item index."""
    return np.array([int(x[1:]) // items_per_group for x in inter.item_map.ids])


@pytest.fixture
def clusters() -> Interactions:
    return planted_clusters()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ["DEEPSHELF_DATA_DIR"])
    if not path.is_dir():
        pytest.skip(f"shared datasets not found at {path}")
    return path


# ---- event stores: SQLite, and PostgreSQL from DEEPSHELF_TEST_POSTGRES_URL or a throwaway server -----------
@pytest.fixture(scope="session")
def postgres_url():
    """DEEPSHELF_TEST_POSTGRES_URL (CI starts the server), else a server started here and stopped at the end."""
    url = os.environ.get("DEEPSHELF_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    script = ROOT / "scripts" / "start-postgres.sh"
    try:
        out = subprocess.run([str(script), "--export"], capture_output=True, text=True, timeout=300, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        pytest.skip(f"could not start PostgreSQL (set DEEPSHELF_TEST_POSTGRES_URL): {getattr(exc, 'stderr', exc)}")
    exports = dict(shlex.split(word)[0].split("=", 1) for word in shlex.split(out.stdout.strip().splitlines()[-1])[1:])
    url = exports["DEEPSHELF_TEST_POSTGRES_URL"]
    os.environ["DEEPSHELF_TEST_POSTGRES_URL"] = url  # child server processes reuse it
    try:
        yield url
    finally:
        os.environ.pop("DEEPSHELF_TEST_POSTGRES_URL", None)
        stop = f"{exports['PG_BINDIR']}/pg_ctl -D {exports['PGDATA_DIR']} stop -m fast"
        cmd = ["su", "postgres", "-s", "/bin/bash", "-c", stop] if os.geteuid() == 0 else ["bash", "-c", stop]
        subprocess.run(cmd, capture_output=True, timeout=60)
        shutil.rmtree(Path(exports["PGDATA_DIR"]).parent, ignore_errors=True)


@pytest.fixture
def fresh_postgres(postgres_url) -> str:
    """A new empty database on the test server, dropped afterwards."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    base, _, _ = postgres_url.rpartition("/")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"{base}/{name}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> str:
    """Each store in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("fresh_postgres")
