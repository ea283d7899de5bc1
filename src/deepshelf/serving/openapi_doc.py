"""The OpenAPI document as the server behaves: per operation, the key scope it needs (security requirement and a
line in its description) and every status its route can answer.

What an operation may answer follows from how it is built, so it is derived here from the route rather than
repeated on each decorator: its auth dependency (401, and 403 for a public key where a private one is needed),
its parameters and body (422; 413 over `max_body_bytes`; 404 for a path whose id names nothing), and the store
or an overloaded worker (503). A decorator's own `responses=` (a 404 or 409 with its reason) is kept as written.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from deepshelf.serving.deps import PRIVATE, PUBLIC, READ_SCHEME
from deepshelf.serving.settings import Settings

_DETAIL = {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}}}}
# FastAPI lists each operation's auth dependency under its header's scheme name (deps.py)
_SCOPE_OF_SCHEME = {"PrivateKey": PRIVATE, "PublicKey": PUBLIC, READ_SCHEME: "read"}
_SCOPE_LINE = {
    PRIVATE: "**Key:** a private key (`DEEPSHELF_API_KEYS`); a public key answers 403.",
    PUBLIC: "**Key:** a public key (`DEEPSHELF_PUBLIC_KEYS`) or a private one.",
}
OPEN_LINE = "**Key:** none."
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def scope_of(operation: dict) -> str | None:
    """PRIVATE, PUBLIC, "read" (public, or none when reads are open) or None (open), from the security
    requirement FastAPI generated for the operation's auth dependency."""
    for requirement in operation.get("security", []):
        for scheme in requirement:
            if scheme in _SCOPE_OF_SCHEME:
                return _SCOPE_OF_SCHEME[scheme]
    return None


def _document(operation: dict, settings: Settings, path: str) -> None:
    scope = scope_of(operation)
    if scope == "read":
        scope = PUBLIC if settings.require_key_for_reads else None
    responses = operation.setdefault("responses", {})

    def add(code: int, description: str, content=_DETAIL) -> None:
        responses.setdefault(str(code), {"description": description, **({"content": content} if content else {})})

    if scope is None:
        operation.pop("security", None)
        line = OPEN_LINE
    else:
        operation["security"] = [{"PrivateKey": []}] if scope == PRIVATE else [{"PublicKey": []}, {"PrivateKey": []}]
        line = _SCOPE_LINE[scope]
        add(401, "missing or invalid X-API-Key (or no keys configured on this server)")
        if scope == PRIVATE:
            add(403, "a public key: this operation needs a private one")
    operation["description"] = f"{operation.get('description', '').rstrip()}\n\n{line}".lstrip()
    if operation.get("parameters") or "requestBody" in operation:
        add(422, "a parameter or a body field is invalid; `detail` names it",
            {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}})
    if "requestBody" in operation:
        add(413, "the body is larger than the server's `max_body_bytes`")
    if "{" in path:
        add(404, "no such id")
    add(503, "the store did not answer in time, or the server is overloaded; retry after `Retry-After` seconds")


def install(app: FastAPI, settings: Settings) -> None:
    """Make `app.openapi()` build the document described above (once, then cached like FastAPI's own)."""

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path, item in doc.get("paths", {}).items():
            for method in METHODS:
                if method in item:
                    _document(item[method], settings, path)
        doc.get("components", {}).get("securitySchemes", {}).pop(READ_SCHEME, None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi
