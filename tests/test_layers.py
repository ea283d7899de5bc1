"""The layer contract in pyproject.toml ([tool.importlinter]): each layer imports only the layers below it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint(cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "lint-imports"), str(ROOT / "pyproject.toml"),
                           "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_layers_are_kept():
    res = lint(ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


def test_a_wrong_way_import_breaks_the_contract(tmp_path):
    """The contract is live: a copy of the package where the bottom layer imports the top one is refused."""
    import shutil

    pkg = tmp_path / "src" / "deepshelf"
    shutil.copytree(ROOT / "src" / "deepshelf", pkg, ignore=shutil.ignore_patterns("__pycache__", "*.parquet", "web"))
    bad = pkg / "storage" / "_wrong_way.py"
    bad.write_text("import deepshelf.serving.app\n")
    res = lint(tmp_path, env={"PYTHONPATH": str(tmp_path / "src"), "PATH": "/usr/bin:/bin"})
    assert res.returncode != 0 and "deepshelf.storage" in res.stdout, res.stdout[-2000:] + res.stderr[-1000:]
