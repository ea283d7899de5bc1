"""The benchmarks' shape: one package run as modules from the repository root (`python -m benchmarks.NAME`), so no
file patches `sys.path`; no file over the 450-line limit; recorded results stored once."""

import hashlib
from collections import defaultdict
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
MAX_LINES = 450


def python_files() -> list[Path]:
    return sorted(p for p in BENCHMARKS.rglob("*.py") if "results" not in p.relative_to(BENCHMARKS).parts)


def test_no_benchmark_file_patches_sys_path():
    assert python_files()
    patching = [str(p.relative_to(BENCHMARKS)) for p in python_files() if "sys.path" in p.read_text()]
    assert patching == []


def test_no_benchmark_file_over_the_limit():
    long = {str(p.relative_to(BENCHMARKS)): n for p in python_files()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_duplicated_results():
    by_content = defaultdict(list)
    for path in sorted((BENCHMARKS / "results").rglob("*")):
        if path.is_file():
            by_content[hashlib.sha256(path.read_bytes()).hexdigest()].append(str(path.relative_to(BENCHMARKS)))
    assert [paths for paths in by_content.values() if len(paths) > 1] == []
