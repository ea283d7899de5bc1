"""Store URLs: which strings name a store (`sqlite:///…`, `postgresql://…`), and how to show one, or a message that
may quote one, without its password."""

from __future__ import annotations

import re
from urllib.parse import unquote

STORE_URL_PREFIXES = ("sqlite://", "postgresql://", "postgres://")

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")  # a URL inside a message (up to a quote or space)
_KEYWORD = re.compile(r"(password\s*=\s*)('[^']*'|[^\s&'\"]+)", re.IGNORECASE)  # libpq keyword or query form
_MASK = "***"
_SHORTEST_MASKED = 3  # a password of fewer characters is not searched for in free text (it would mask words)


def is_store_url(name: str) -> bool:
    """Whether `name` is an event store URL rather than a dataset name or a file path."""
    return name.startswith(STORE_URL_PREFIXES)


def redact_url(url: str) -> str:
    """The URL without a password (user info and `password=` parameters), for messages, logs and run configs;
    malformed URLs too (a password with `@` in it, a scheme misspelt, a libpq keyword string)."""
    if "://" in url:
        scheme, rest = url.split("://", 1)
        if "@" in rest:
            creds, host = rest.rsplit("@", 1)
            url = f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return _KEYWORD.sub(rf"\g<1>{_MASK}", url)


def passwords(url: str) -> list[str]:
    """The passwords a store URL carries (its user info's, its `password=` parameters'), as written and decoded."""
    found = []
    if "://" in url and "@" in url.split("://", 1)[1]:
        creds = url.split("://", 1)[1].rsplit("@", 1)[0]
        if ":" in creds:
            found.append(creds.split(":", 1)[1])
    found += [m.group(2).strip("'") for m in _KEYWORD.finditer(url)]
    found += [unquote(p) for p in found]
    # an unencoded `@` in it: libpq ends the password at the first one and takes the rest for the host's name
    found += [piece for p in found for piece in p.split("@")]
    return sorted({p for p in found if len(p) >= _SHORTEST_MASKED}, key=len, reverse=True)


def redact(text: str, url: str | None = None) -> str:
    """`text` (an error message, a log line) with every URL in it redacted (`redact_url`), every `password=`
    masked, and the password of `url` masked wherever it appears alone (a driver may quote just that part)."""
    for secret in passwords(url) if url else ():
        text = text.replace(secret, _MASK)
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    return _KEYWORD.sub(rf"\g<1>{_MASK}", text)
