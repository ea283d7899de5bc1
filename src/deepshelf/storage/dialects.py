"""What the schema's DDL, its migrations and the repair of stored rows need to know about each database.

Its own module, below migrations.py and repair.py, because both read it and migrations.py runs repair's steps.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    """What the DDL and the runner need to know about a database."""

    name: str
    pk: str  # an auto-incrementing integer primary key
    blob: str  # a column type for bytes
    param: str  # the driver's placeholder
    lock: str | None = None  # a statement that serialises migrating processes inside a transaction


SQLITE = Dialect("sqlite", pk="INTEGER PRIMARY KEY AUTOINCREMENT", blob="BLOB", param="?")
POSTGRES = Dialect("postgresql", pk="BIGSERIAL PRIMARY KEY", blob="BYTEA", param="%s",
                   lock="SELECT pg_advisory_xact_lock(715517)")
