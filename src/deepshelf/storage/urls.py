"""Store URLs: which strings name a store (`sqlite:///…`, `postgresql://…`), and how to show one without its password."""

from __future__ import annotations

STORE_URL_PREFIXES = ("sqlite://", "postgresql://", "postgres://")


def is_store_url(name: str) -> bool:
    """Whether `name` is an event store URL rather than a dataset name or a file path."""
    return name.startswith(STORE_URL_PREFIXES)


def redact_url(url: str) -> str:
    """The URL without a password, for messages, logs and run configs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url
