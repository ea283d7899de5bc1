"""CORS origins are named, never `*` (issue 27, F12): a wildcard would let any site's page call every route, the
private ones included, from a visitor's browser. Refused at startup with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from deepshelf.engine.settings import Settings


@pytest.mark.parametrize("origins", ["*", "https://shop.example, *", "https://*.shop.example", "shop.example",
                                     "https://shop.example/path"])
def test_wildcards_and_non_origins_are_refused(origins):
    with pytest.raises(ValidationError, match="cors_origins"):
        Settings(cors_origins=origins)


def test_named_origins_are_kept():
    assert Settings(cors_origins="https://shop.example, http://localhost:8080").cors_origin_list == (
        "http://localhost:8080", "https://shop.example")


def test_serve_refuses_a_wildcard_in_one_line(run_link):
    env = {**os.environ, "DEEPSHELF_CORS_ORIGINS": "*", "DEEPSHELF_DATABASE": "sqlite:///unused.db"}
    run = subprocess.run([sys.executable, "-m", "deepshelf", "serve", "--run", str(run_link)], env=env,
                         capture_output=True, text=True, timeout=120)
    out = (run.stdout + run.stderr).strip()
    assert run.returncode == 2, out
    assert "Traceback" not in out and len(out.splitlines()) == 1, out
    assert "DEEPSHELF_CORS_ORIGINS" in out and "'*' is refused" in out
