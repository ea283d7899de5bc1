"""`deepshelf serve` seeds an empty store's catalogue from the run's dataset, once, before the service starts."""

from contextlib import closing

from deepshelf.cli.serve import seed_catalog
from deepshelf.storage import Item, open_store


def make_run(tmp_path, dataset: str, catalog: str | None):
    from deepshelf.runs.artifacts import write_run
    from deepshelf.runs.config import TrainConfig

    class Saved:  # seeding reads the run's config only
        def save(self, path):
            path.mkdir()

    run = tmp_path / "run"
    write_run(run, TrainConfig(dataset=dataset, model="popularity", catalog=catalog), Saved(), {})
    return run


def test_empty_store_gets_the_runs_catalogue_once(tmp_path):
    events = tmp_path / "events.csv"
    events.write_text("user,item,timestamp\nu1,a,2024-01-01\nu2,b,2024-01-02\n")
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("item,title,price,category\na,Red mug,2.5,kitchen\nb,Tea pot,,kitchen\nc,Lamp,NaN,\n")
    run = make_run(tmp_path, str(events), str(catalog))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert seed_catalog(run, url) == 3
    with closing(open_store(url)) as store:
        assert store.get_item("a").title == "Red mug" and store.get_item("a").price == 2.5
        assert store.get_item("b").price is None and store.get_item("c").price is None  # unknown, not 0 or NaN
        store.upsert_items([Item(item_id="a", title="Renamed mug")])
    assert seed_catalog(run, url) == 0  # a store with a catalogue is the source of truth: left as it is
    with closing(open_store(url)) as store:
        assert store.get_item("a").title == "Renamed mug" and store.count_items() == 3


def test_missing_dataset_leaves_the_store_empty(tmp_path):
    run = make_run(tmp_path, str(tmp_path / "gone.csv"), None)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert seed_catalog(run, url) == 0
    with closing(open_store(url)) as store:
        assert store.count_items() == 0


def test_serve_without_a_database_names_the_flag_and_creates_nothing(tmp_path):
    """`deepshelf serve` never makes up ./deepshelf.db: the store is named by --database or DEEPSHELF_DATABASE."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    run = make_run(tmp_path, str(tmp_path / "gone.csv"), None)
    env = {k: v for k, v in os.environ.items() if k != "DEEPSHELF_DATABASE"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")
    res = subprocess.run([sys.executable, "-m", "deepshelf", "serve", "--run", str(run), "--port", "1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "--database is required" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.db"))


def test_serve_gives_each_process_one_math_thread_unless_told(tmp_path):
    """`deepshelf serve` sets OpenMP (FAISS, torch) and BLAS to one thread per process before they load, so
    `--workers N` processes do not each spin a thread team on the cores the others serve from; a count the
    environment names is kept. (uvicorn.run is replaced by a probe that loads the libraries and reports.)"""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    run = make_run(tmp_path, str(tmp_path / "gone.csv"), None)
    probe = ("import json, sys, threadpoolctl, uvicorn\n"
             "def report(*args, **kwargs):\n"
             "    import numpy, faiss, scipy.linalg  # the libraries a server loads\n"
             "    print('THREADS', json.dumps(sorted({(i['user_api'], i['num_threads']) "
             "for i in threadpoolctl.threadpool_info()})))\n"
             "uvicorn.run = report\n"
             "from deepshelf.cli.main import main\n"
             "sys.argv = ['deepshelf', 'serve', '--run', sys.argv[1], '--database', sys.argv[2]]\n"
             "main()\n")
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                              "MKL_NUM_THREADS", "DEEPSHELF_DATABASE")}
    base["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")

    def threads(**env) -> set:
        res = subprocess.run([sys.executable, "-c", probe, str(run), f"sqlite:///{tmp_path / 'store.db'}"],
                             cwd=tmp_path, env={**base, **env}, capture_output=True, text=True, timeout=120)
        line = next((x for x in res.stdout.splitlines() if x.startswith("THREADS ")), None)
        assert line is not None, res.stderr
        return {tuple(x) for x in json.loads(line.removeprefix("THREADS "))}

    found = threads()
    assert {api for api, _ in found} >= {"blas", "openmp"} and {n for _, n in found} == {1}
    if (os.cpu_count() or 1) >= 2:
        assert ("openmp", 2) in threads(OMP_NUM_THREADS="2")  # the operator's own setting wins
