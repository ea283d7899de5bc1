"""`make run` takes the demo's port from PORT (README, "Two commands")."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("args, port", [((), "8000"), (("PORT=8080",), "8080")])
def test_make_run_passes_the_port(args, port):
    # -n: print the commands, run none (the install recipe is printed too when the venv is not current)
    out = subprocess.run(["make", "-n", "run", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    (demo,) = [line for line in out.splitlines() if "deepshelf demo" in line]
    assert demo.endswith(f"deepshelf demo --port {port}")
