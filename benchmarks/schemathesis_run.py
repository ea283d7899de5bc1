"""The OpenAPI contract, checked in full: schemathesis (`--checks all`, positive and negative data, 30 examples per
operation by default) against a running `deepshelf serve` on SQLite and on PostgreSQL. Prints the server errors
and the failed checks, and writes the result to docs/benchmarks.md (`## OpenAPI contract (schemathesis)`).

    .venv/bin/python -m benchmarks.schemathesis_run                       # SQLite, and PostgreSQL when found
    eval "$(bash scripts/start-postgres.sh --export)"; .venv/bin/python -m benchmarks.schemathesis_run --write-docs

PostgreSQL comes from DEEPSHELF_TEST_POSTGRES_URL (a fresh database is created on that server and dropped
afterwards); without it only SQLite is run. The shop is the test suite's synthetic one (tests/api/conftest.py),
served by an item-kNN run trained here. A smaller run is in the suite (tests/api/test_fuzz.py).

Every check runs on every operation except the pairs in EXCLUDED, each with its reason (written to the docs too):
rules across fields or against the server's clock that JSON Schema cannot state, so schemathesis' "schema-valid
request accepted" check sends requests the server rightly refuses with a 422 naming the field; and reads that
answer for any shopper id by design, which its "use after free" check takes for the erased shopper's resource.
Rules JSON Schema *can* state are in the OpenAPI document (api/openapi_doc.py, validation.py).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

from benchmarks.lib.cli import docs_option, parser, publish
from benchmarks.lib.loadgen import free_port
from benchmarks.lib.mdsection import machine
from tests.api.conftest import seed_store, train, write_shop

log = logging.getLogger("schemathesis_run")
KEY = "contract-key"
TITLE = "OpenAPI contract (schemathesis)"
_LISTS = ("min_price <= max_price (two query parameters), and every `category` one the catalogue has (a 422 naming "
          "the catalogue's categories: the catalogue's content, which changes with every upsert, not a schema)")
_CLOCK = "more than max_clock_skew_s ahead of the server's clock (a bound relative to now, which JSON Schema lacks)"
# (method, path, check, why): the only checks not run, and only on these operations. Each reason names every rule
# the check would trip on there (found with --no-exclusions and by reading the route); the limits a schema can
# state are in the OpenAPI document instead (k <= max_k, batches <= max_batch, sessions <= max_session_items,
# bounded numbers, GA4's client_id or user_id).
EXCLUDED = [
    ("GET", "/v1/popular", "positive_data_acceptance", _LISTS),
    ("GET", "/v1/search", "positive_data_acceptance", _LISTS),
    ("GET", "/v1/users/{user_id}/recommendations", "positive_data_acceptance", _LISTS),
    ("GET", "/v1/items/{item_id}/similar", "positive_data_acceptance", _LISTS),
    ("POST", "/v1/sessions/recommendations", "positive_data_acceptance",
     _LISTS.replace("(two query parameters)", "(two query parameters, or two fields of `rules`)")),
    ("GET", "/v1/stats/events", "positive_data_acceptance",
     "`days` is bounded by the bucket size (at most max_stats_buckets buckets): a rule across two parameters"),
    ("GET", "/v1/analytics/recommendations", "positive_data_acceptance",
     "`from` not after `to`, the from..to range at most max_stats_buckets buckets of the chosen size (rules across "
     "parameters), and `from`/`to` not " + _CLOCK),
    ("POST", "/v1/events", "positive_data_acceptance",
     "a timestamp must not be before 1970 (JSON Schema has no bound on a date-time string) nor be " + _CLOCK),
    ("POST", "/v1/events/ga4", "positive_data_acceptance",
     "timestamp_micros (the body's or an event's) must not be " + _CLOCK + "; a purchase's price x quantity at most "
     "1e9 (a product of two fields: 400 naming the item); at most max_batch products over all events (a count "
     "across array elements)"),
    ("POST", "/v1/items", "positive_data_acceptance",
     "an item_id at most once per batch (JSON Schema's uniqueItems compares whole objects, not one field)"),
    ("PUT", "/v1/experiments/{name}", "positive_data_acceptance",
     "variant names distinct and shares summing to 1 (rules across array elements), and each variant's `run` a "
     "run folder this server can load (422 naming variants[i].run: the server's files, not a schema)"),
    ("POST", "/v1/items:import", "positive_data_acceptance",
     "the body is a Merchant Center feed (XML or TSV), whose grammar is not a JSON Schema; an unreadable feed "
     "answers 400 naming why"),
    ("GET", "/v1/users/{user_id}/recommendations", "use_after_free",
     "any shopper id answers 200 by design (an unknown or erased shopper gets popular items), so reading it "
     "after DELETE /v1/users/{user_id} is not a use of erased data; erasure is tested against the database in "
     "tests/api/test_erasure.py"),
    ("GET", "/v1/users/{user_id}/events", "use_after_free",
     "any shopper id answers 200 with its history, empty for an unknown or erased shopper (erasure: "
     "tests/api/test_erasure.py)"),
    ("GET", "/v1/items/{item_id}/image", "ensure_resource_availability",
     "an item has an image only when written with image_base64; one created without answers the documented 404 "
     "(\"has no uploaded image\"), which schemathesis reads as the created item missing"),
]


def config_file(path: Path, excluded=None) -> Path:
    """A schemathesis.toml enabling every check (what `--checks all` does; a check named on the command line
    would override the per-operation settings) but exactly the EXCLUDED ones on exactly their operations."""
    excluded = EXCLUDED if excluded is None else excluded
    blocks = ["[checks]\nenabled = true\n"] + [
        f'[[operations]]\n# {why}\ninclude-method = "{method}"\ninclude-path = "{op}"\n'
        f"checks.{check}.enabled = false\n" for method, op, check, why in excluded]
    path.write_text("\n".join(blocks))
    return path


def start_server(run: Path, database: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    env = {**os.environ, "DEEPSHELF_API_KEYS": KEY, "DEEPSHELF_WATCH_RUN": "false", "DEEPSHELF_MAX_BATCH": "20",
           "DEEPSHELF_MAX_K": "50"}
    proc = subprocess.Popen([sys.executable, "-m", "deepshelf", "serve", "--run", str(run), "--database", database,
                             "--port", str(port), "--log-level", "warning"], env=env,
                            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not start within 300 s")


def run_schemathesis(base: str, examples: int, report: Path, seed: int,
                     excluded=None) -> tuple[int, str, list[tuple[str, str]]]:
    """(exit code, stdout, [(operation, failure text)]) of one schemathesis run."""
    cmd = [str(Path(sys.executable).with_name("schemathesis")), "--config-file",
           str(config_file(report.with_suffix(".toml"), excluded)), "run", f"{base}/openapi.json",
           "--max-examples", str(examples), "--seed", str(seed), "-H", f"X-API-Key: {KEY}",
           "--report", "junit", "--report-junit-path", str(report), "--no-color", "--workers", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    failures = []
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            for bad in list(case.iter("failure")) + list(case.iter("error")):
                failures.append((case.get("name", "?"), (bad.get("message") or "") + "\n" + (bad.text or "")))
    return out.returncode, out.stdout + out.stderr, failures


def kind_of(text: str) -> str:
    """The check a failure text names, the status it got and, for a 422, the first field named."""
    check = re.search(r"- (ST\d+ [^\n]+)", text) or re.search(r"^(ST\d+)", text.strip())
    status = re.search(r"\[(\d{3})\]", text)
    loc = re.search(r'"loc":\[([^\]]*)\]', text)
    out = check.group(1).strip() if check else "unknown"
    if status:
        out += f": {status.group(1)}"
    if loc and status and status.group(1) == "422":
        out += f" on {loc.group(1)}"
    return out[:160]


def main() -> None:
    ap = parser(__doc__, whole=True)
    ap.add_argument("--examples", type=int, default=30, help="examples per operation (at least 30 for the record)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--no-exclusions", action="store_true",
                    help="run every check on every operation too: what each exclusion hides (not for the record)")
    docs_option(ap, "--write-docs", help=f"replace '## {TITLE}' in docs/benchmarks.md")
    args = ap.parse_args()
    if args.no_exclusions and args.write_docs:
        raise SystemExit("--no-exclusions is a diagnosis: its failures are the excluded rules, not for the docs")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    work = Path(tempfile.mkdtemp(prefix="deepshelf-contract-"))
    events, catalog = write_shop(work)
    run = train(events, catalog, work / "knn", "itemknn")
    rows, details = [], []
    for store in args.stores.split(","):
        database, drop = None, None
        if store == "sqlite":
            database = f"sqlite:///{work / 'contract.db'}"
        elif store == "postgresql":
            url = os.environ.get("DEEPSHELF_TEST_POSTGRES_URL")
            if not url:
                log.warning("no DEEPSHELF_TEST_POSTGRES_URL: PostgreSQL skipped")
                rows.append("| PostgreSQL | not run (no DEEPSHELF_TEST_POSTGRES_URL) | | | |")
                continue
            import psycopg

            name = f"contract_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            database = f"{url.rpartition('/')[0]}/{name}"

            def drop(url=url, name=name):
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        seed_store(database)
        proc, base = start_server(run, database, work / f"server-{store}.log")
        try:
            started = time.time()
            code, output, failures = run_schemathesis(base, args.examples, work / f"junit-{store}.xml", args.seed,
                                                      [] if args.no_exclusions else None)
            seconds = time.time() - started
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if drop:
                drop()
        summary = [line for line in output.splitlines() if re.search(r"\b(passed|failed|errors?)\b", line)][-3:]
        server_errors = sum("Server error" in text for _, text in failures)
        kinds: dict[str, int] = {}
        for _, text in failures:
            kinds[kind_of(text)] = kinds.get(kind_of(text), 0) + 1
        print(f"\n==== {store}: exit {code}, {len(failures)} failing operations, {server_errors} with server errors "
              f"({seconds:.0f} s)")
        for op, text in failures:
            print(f"-- {op}\n{text.strip()[:1500]}\n")
        print("\n".join(summary))
        codes: dict[str, int] = {}
        for kind in kinds:
            codes[kind[:5]] = codes.get(kind[:5], 0) + kinds[kind]
        rows.append(f"| {store} | {len(failures)} | {server_errors} | "
                    f"{'; '.join(f'{k} ({n})' for k, n in sorted(codes.items())) or 'none'} | {seconds:.0f} s |")
        details += [f"- {store}: `{op}`: {kind_of(text)}" for op, text in failures]
    body = (f"`benchmarks/schemathesis_run.py`: schemathesis {_version()} `run --mode all "
            f"--max-examples {args.examples} --seed {args.seed}` with every check enabled (`[checks] enabled = true`) "
            f"and a private key, against `deepshelf serve` "
            f"(one worker, the test suite's synthetic shop, an item-kNN run) on each store. Machine: {machine()}; "
            f"load average {os.getloadavg()[0]:.1f} at the end (a shared machine); "
            f"{time.strftime('%Y-%m-%d', time.gmtime())}.\n\n"
            "Checks not run, each on the operations named only (the rule is the server's, answered with a 422 "
            "naming the field, or a read that answers for any shopper by design):\n\n"
            + "\n".join(f"- `{check}` on `{method} {op}`: {why}" for method, op, check, why in EXCLUDED) + "\n\n"
            "| store | operations with failures | of which server errors (5xx) | failed checks | time |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n" + ("\n".join(details) or "No failures."))
    publish(body, args, TITLE, shown="\n" + body)


def _version() -> str:
    import schemathesis

    return schemathesis.__version__


if __name__ == "__main__":
    main()
