"""Shopper tokens: a public key (the one in every shop page) scoped to one shopper.

A token is `SHOPPER.EXPIRY.SIGNATURE`: the shopper id in base64url (no padding), the expiry in Unix seconds, and
HMAC-SHA256 over `SHOPPER.EXPIRY` with the server's `DEEPSHELF_TOKEN_SECRET`, in base64url. The shop's backend
mints one per signed-in shopper (this recipe with the standard library, `deepshelf.client.shopper_token`, or
`deepshelf shopper-token`) and hands it to its page, which sends it as `X-Shopper-Token` beside the public key.
The server opens that shopper's personal lists, and nothing of any other shopper, until the expiry.

Standard library only, and standing alone like the client (an import-linter contract): the HTTP layer checks tokens,
the CLI and the client mint them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

HEADER = "X-Shopper-Token"


class TokenError(Exception):
    """A shopper token that opens nothing: `status` 401 (malformed, tampered, expired) or 403 (another shopper);
    the message names the reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _sign(secret: str, body: str) -> str:
    return _b64(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest())


def mint(secret: str, user_id: str, ttl: int = 3600, now: float | None = None) -> str:
    """A token for `user_id`, valid `ttl` seconds from now."""
    if not secret:
        raise ValueError("a shopper token needs the secret (DEEPSHELF_TOKEN_SECRET)")
    if not user_id:
        raise ValueError("a shopper token needs a shopper id")
    if ttl <= 0:
        raise ValueError("ttl must be a positive number of seconds")
    expiry = int(now if now is not None else time.time()) + int(ttl)
    body = f"{_b64(user_id.encode())}.{expiry}"
    return f"{body}.{_sign(secret, body)}"


def verify(secret: str, token: str, user_id: str, now: float | None = None) -> int:
    """The token's expiry (Unix seconds) when `token` opens `user_id`'s lists; else raises `TokenError` naming
    why."""
    parts = token.strip().split(".")
    if len(parts) != 3 or not all(parts) or not (parts[1].isascii() and parts[1].isdigit()):
        raise TokenError(401, "malformed shopper token: expected SHOPPER.EXPIRY.SIGNATURE "
                              "(see the README, \"Shopper tokens\")")
    shopper, expiry, signature = parts
    if not hmac.compare_digest(_sign(secret, f"{shopper}.{expiry}").encode(), signature.encode()):
        raise TokenError(401, "invalid shopper token: the signature does not match (tampered, or signed with "
                              "another secret than this server's DEEPSHELF_TOKEN_SECRET)")
    if int(expiry) <= int(now if now is not None else time.time()):
        raise TokenError(401, f"expired shopper token (expired at {int(expiry)}, Unix seconds): mint a new one")
    try:
        owner = base64.urlsafe_b64decode(shopper + "=" * (-len(shopper) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise TokenError(401, "malformed shopper token: the shopper id is not base64url") from None
    if not hmac.compare_digest(owner.encode(), user_id.encode()):
        raise TokenError(403, "this shopper token is for another shopper: it opens only its own shopper's lists")
    return int(expiry)
