"""The OpenAPI document as the server behaves: per operation, the key scope it needs (security requirement and a
line in its description) and every status its route can answer.

What an operation may answer follows from how it is built, so it is derived here from the route rather than
repeated on each decorator: its auth dependency (401, and 403 for a public key where a private one is needed),
its parameters and body (422; 413 over `max_body_bytes`; 404 for a path whose id names nothing), and the store
or an overloaded worker (503). A decorator's own `responses=` (a 404 or 409 with its reason) is kept as written.
Every operation may answer 400: the HTTP server refuses a request it cannot parse (a request line and headers over
16 KiB, malformed HTTP) with a plain-text 400 before any route sees it.

Cross-field rules JSON Schema can express are stated here on the component schema (`_CROSS_FIELD`); those it
cannot (min_price <= max_price, a stats range per bucket size, distinct ids in one batch, timestamps against the
server's clock) are checked by the server (422 naming the field) and listed in benchmarks/schemathesis_run.py.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from deepshelf.api.deps import PRIVATE, PUBLIC, READ_SCHEME
from deepshelf.engine.settings import Settings

_DETAIL = {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}}}}
# FastAPI lists each operation's auth dependency under its header's scheme name (deps.py)
_SCOPE_OF_SCHEME = {"PrivateKey": PRIVATE, "PublicKey": PUBLIC, READ_SCHEME: "read"}
_SCOPE_LINE = {
    PRIVATE: "**Key:** a private key (`DEEPSHELF_API_KEYS`); a public key answers 403.",
    PUBLIC: "**Key:** a public key (`DEEPSHELF_PUBLIC_KEYS`) or a private one.",
}
OPEN_LINE = "**Key:** none."
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_UNPARSABLE = {"description": "the HTTP server could not parse the request (malformed, or a request line and "
                              "headers over 16 KiB; plain text), or the service refused its content (`detail`)",
               "content": {"text/plain": {"schema": {"type": "string"}}}}
# component schema -> the JSON Schema of a rule across its fields (the route checks it too, with a 422)
_CROSS_FIELD = {
    "GA4Body": {"anyOf": [{"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
                          {"required": ["client_id"], "properties": {"client_id": {"type": "string"}}}]},
}


_NULLABLE_TEXT = {"anyOf": [{"type": "string"}, {"type": "null"}]}
# validation.py's 422 answer: one object, `detail` a sentence like every other error's
VALIDATION_PROBLEM = {
    "title": "ValidationProblem", "type": "object", "required": ["detail", "errors"],
    "properties": {
        "detail": {"type": "string", "description": "the first problem in words, naming its field"},
        "field": {**_NULLABLE_TEXT, "description": "the first problem's field, e.g. events[0].timestamp"},
        "location": {**_NULLABLE_TEXT, "description": "where that field is: body, query, path or header"},
        "errors": {"type": "array", "description": "every problem found", "items": {
            "type": "object", "required": ["loc", "msg", "type"],
            "properties": {"loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                           "msg": {"type": "string"}, "type": {"type": "string"}, "input": {},
                           "ctx": {"type": "object"}}}},
    },
}


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
        responses.pop("422", None)  # FastAPI's own entry documents a list under `detail`; validation.py answers this
        add(422, "a parameter or a body field is invalid; `detail` names it in a sentence, `errors` lists them all",
            {"application/json": {"schema": {"$ref": "#/components/schemas/ValidationProblem"}}})
    if "requestBody" in operation:
        add(413, "the body is larger than the server's `max_body_bytes`")
    if "{" in path:
        add(404, "no such id")
    add(503, "the store did not answer in time, no run is loaded yet, or the server is overloaded; retry after "
             "`Retry-After` seconds")
    content = responses.setdefault("400", {"description": _UNPARSABLE["description"]}).setdefault("content", {})
    content.setdefault("application/json", _DETAIL["application/json"])  # a refusal by the service (`detail`)
    content.update(_UNPARSABLE["content"])


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
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas["ValidationProblem"] = VALIDATION_PROBLEM
        for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 shape, not this server's
            schemas.pop(unused, None)
        for name, rule in _CROSS_FIELD.items():
            if name in doc.get("components", {}).get("schemas", {}):
                doc["components"]["schemas"][name].update(rule)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi


def allowed_methods(doc: dict, path: str) -> list[str]:
    """The methods `doc` documents for a request path (the `Allow` of a 405): every operation whose template
    matches it, segment by segment, whichever route serves it."""
    segments = path.split("/")
    allowed: set[str] = set()
    for template, item in doc.get("paths", {}).items():
        parts = template.split("/")
        if len(parts) == len(segments) and all(part == seg or (part.startswith("{") and part.endswith("}") and seg)
                                               for part, seg in zip(parts, segments)):
            allowed |= {method.upper() for method in item if method in METHODS}
    return sorted(allowed)
