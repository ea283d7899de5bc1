"""The server store: PostgreSQL through psycopg 3; many server processes may share one database.

Imported only for `postgresql://` URLs (see connect.py), so SQLite users need no psycopg."""

from __future__ import annotations

from contextlib import contextmanager

import psycopg

from deepshelf.errors import DeepshelfError
from deepshelf.storage.base import Store
from deepshelf.storage.migrations import POSTGRES
from deepshelf.storage.urls import redact_url


class PostgresStore(Store):
    kind = "postgresql"
    dialect = POSTGRES

    def __init__(self, url: str):
        super().__init__(url)
        try:
            self._migrate()
        except psycopg.OperationalError as exc:
            raise DeepshelfError(f"cannot connect to {redact_url(url)}: {str(exc).strip().splitlines()[0]}") from None

    def _connect(self):
        return psycopg.connect(self.url, autocommit=True)

    @contextmanager
    def _write(self):
        conn = self._conn()
        try:
            with conn.transaction(), conn.cursor() as cur:
                yield cur
        except psycopg.OperationalError:
            self._drop_conn()  # a dead connection: the next call reconnects
            raise

    def _fetch(self, sql, args):
        try:
            with self._conn().cursor() as cur:
                cur.execute(self._sql(sql), args)
                return cur.fetchall()
        except psycopg.OperationalError:
            self._drop_conn()
            raise

    def _read(self, sql, args=()):
        try:
            return self._fetch(sql, args)
        except psycopg.OperationalError:  # a connection the server dropped (restart, idle timeout): retry once
            return self._fetch(sql, args)

    def _bucket_expr(self) -> str:
        return "floor(ts / ?) * ?"

    def _next_seq_sql(self) -> str:
        return "nextval('item_seq')"
