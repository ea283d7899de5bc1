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
    bad.write_text("import deepshelf.api.app\n")
    res = lint(tmp_path, env={"PYTHONPATH": str(tmp_path / "src"), "PATH": "/usr/bin:/bin"})
    assert res.returncode != 0 and "deepshelf.storage" in res.stdout, res.stdout[-2000:] + res.stderr[-1000:]


def test_the_engine_contract_bites(tmp_path):
    """The engine imports no web framework and nothing of the HTTP layer: a copy where it does is refused."""
    import shutil

    for planted in ("import fastapi\n", "from starlette.requests import Request\n", "import deepshelf.api.deps\n"):
        pkg = tmp_path / planted.split()[1].replace(".", "_") / "src" / "deepshelf"
        shutil.copytree(ROOT / "src" / "deepshelf", pkg, ignore=shutil.ignore_patterns("__pycache__", "*.parquet", "web"))
        (pkg / "engine" / "_wrong_way.py").write_text(planted)
        res = lint(pkg.parent.parent, env={"PYTHONPATH": f"{pkg.parent}:{':'.join(sys.path)}", "PATH": "/usr/bin:/bin"})
        assert res.returncode != 0, planted + res.stdout[-2000:] + res.stderr[-1000:]
        assert "the engine imports no web framework and nothing of the HTTP layer BROKEN" in res.stdout, planted


def _import_graph() -> dict[str, set[str]]:
    import grimp

    graph = grimp.build_graph("deepshelf", include_external_packages=False)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def _circles(imports: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(imports):
        if root in index:
            continue
        work = [(root, iter(sorted(imports[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(imports.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_circle_finder_finds_a_planted_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    """No module imports itself through others, counting imports inside functions and for type hints only (grimp
    reads every import statement)."""
    assert _circles(_import_graph()) == []
