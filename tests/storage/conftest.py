"""Store fixtures: each backend in turn, PostgreSQL from DEEPSHELF_TEST_POSTGRES_URL or a throwaway server started
by scripts/start-postgres.sh (skipped when neither is possible)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
    os.environ["DEEPSHELF_TEST_POSTGRES_URL"] = url
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
