"""deepshelf-client (clients/python): the HTTP client without the training stack, built from this repository and
installed with no dependencies into a fresh virtual environment; only httpx's own packages are made importable
there (linked from this environment: no network). It imports, mints a token and raises ApiError on a 404."""

from __future__ import annotations

import http.server
import importlib.metadata as md
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _closure(names: list[str]) -> set[str]:
    """The distributions `names` need, transitively (no extras)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        dist = md.distribution(todo.pop())
        if dist.metadata["Name"].lower() in seen:
            continue
        seen.add(dist.metadata["Name"].lower())
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def _link_packages(dists: set[str], into: Path) -> None:
    """Symlink each distribution's top-level packages / modules into `into`."""
    into.mkdir()
    for name in dists:
        dist = md.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).split("/")[0].endswith(
            (".dist-info", ".data")) and not str(f).startswith("..")}
        for top in tops:
            source = Path(dist.locate_file(top))
            if source.exists() and not (into / top).exists():
                os.symlink(source, into / top)


def test_slim_client_installs_and_works_without_the_training_stack(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    str(ROOT / "clients" / "python"), "-w", str(wheels)], check=True, capture_output=True,
                   timeout=300)
    (wheel,) = wheels.glob("deepshelf_client-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        modules = sorted(n for n in zf.namelist() if n.startswith("deepshelf/"))
        meta = zf.read(next(n for n in zf.namelist() if n.endswith("METADATA"))).decode()
    assert modules == ["deepshelf/__init__.py", "deepshelf/client.py", "deepshelf/tokens.py"]
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert [Requirement(r).name for r in requires] == ["httpx"]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    deps = tmp_path / "httpx-only"
    _link_packages(_closure(["httpx"]), deps)

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            body = b'{"detail": "no such item"}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = f"""
import importlib.util, sys
for heavy in ("torch", "faiss", "lightgbm", "onnxruntime", "numpy", "deepshelf.cli", "deepshelf.engine"):
    assert importlib.util.find_spec(heavy) is None, heavy
from deepshelf.client import ApiError, Client, shopper_token
from deepshelf import tokens
token = shopper_token("secret", "12680", 60)
tokens.verify("secret", token, "12680")  # raises when it does not verify
with Client("http://127.0.0.1:{server.server_address[1]}", "key") as shop:
    try:
        shop.item("missing")
    except ApiError as exc:
        assert exc.status == 404 and "no such item" in str(exc.detail), exc
    else:
        raise AssertionError("no ApiError")
print("ok", sys.prefix)
"""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(deps), "PYTHONNOUSERSITE": "1"}
    try:
        res = subprocess.run([str(py), "-c", script], capture_output=True, text=True, env=env, timeout=120)
    finally:
        server.shutdown()
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok " + str(venv))
