"""The README's production recipe end to end: the sample feed and GA4 export into a fresh PostgreSQL database, the
first run by `retrain --once`, then deploy/Procfile under honcho (`serve --workers 2` and `retrain --every`) with
deploy/nginx.conf in front; a list is asked for through nginx and the retraining loop's first decision is awaited.
The commands are the README block's own lines; only the settings file (database, ports, runs folder) is the
test's."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api.test_resilience import nginx
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
KEY, PUBLIC = "deploy-private", "deploy-public"


def recipe_lines() -> list[str]:
    """The command lines of the README's production recipe (the bash block after "### Production recipe")."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Production recipe", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_recipe_names_the_deploy_files():
    lines = recipe_lines()
    assert any(line.startswith("honcho -f deploy/Procfile -e deploy/deepshelf.env start") for line in lines)
    for path in ("deploy/Procfile", "deploy/deepshelf.env", "deploy/nginx.conf", "deploy/samples/products.xml",
                 "deploy/samples/ga4_events.ndjson"):
        assert (ROOT / path).is_file(), path
    # the settings file sets every variable the Procfile uses
    procfile = (ROOT / "deploy" / "Procfile").read_text()
    used = set(re.findall(r"\$(DEEPSHELF_\w+)", procfile))
    env = (ROOT / "deploy" / "deepshelf.env").read_text()
    assert used and used <= set(re.findall(r"^(DEEPSHELF_\w+)=", env, re.M))


@pytest.mark.skipif(shutil.which("honcho", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                                os.environ.get("PATH", "")])) is None,
                    reason="honcho is not installed (pip install -e '.[dev]' installs it)")
@pytest.mark.skipif(shutil.which("nginx") is None,
                    reason="nginx is not installed (apt-get install nginx; .ci/run installs it)")
def test_production_recipe_end_to_end(fresh_postgres, tmp_path):
    port, front = free_port(), free_port()
    runs = tmp_path / "runs" / "shop"
    settings = {"DEEPSHELF_DATABASE": fresh_postgres, "DEEPSHELF_API_KEYS": KEY, "DEEPSHELF_PUBLIC_KEYS": PUBLIC,
                "DEEPSHELF_TOKEN_SECRET": "deploy-secret", "DEEPSHELF_RUNS_DIR": str(runs),
                "DEEPSHELF_WORKERS": "2", "DEEPSHELF_PORT": str(port), "DEEPSHELF_RETRAIN_EVERY": "1h"}
    env_file = tmp_path / "deepshelf.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    env = {**os.environ, **settings, "PYTHONPATH": str(ROOT / "src"),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}

    lines = recipe_lines()
    once = [line for line in lines if line.startswith("deepshelf ")]
    assert [shlex.split(line)[1] for line in once] == ["import-feed", "import-events", "retrain"]
    for line in once:
        res = subprocess.run(["bash", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"{line}: {res.stdout[-1000:]} {res.stderr[-2000:]}"
    assert (runs / "current" / "config.json").is_file()

    (start,) = [line for line in lines if line.startswith("honcho ")]
    start = start.replace("-e deploy/deepshelf.env", f"-e {env_file}")
    log = tmp_path / "honcho.log"
    with log.open("w") as sink:
        honcho = subprocess.Popen(["bash", "-c", f"exec {start}"], cwd=ROOT, env=env, stdout=sink,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with nginx(tmp_path, front, port) as base:
            deadline = time.monotonic() + 300
            while True:
                assert honcho.poll() is None, f"honcho exited: {log.read_text()[-3000:]}"
                try:
                    if httpx.get(f"{base}/ready", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"not ready through nginx: {log.read_text()[-3000:]}"
                time.sleep(0.5)
            answer = httpx.get(f"{base}/v1/popular?k=5", headers={"X-API-Key": PUBLIC}, timeout=30)
            assert answer.status_code == 200, answer.text
            items = answer.json()["items"]
            assert items and all(item["item_id"].startswith("SKU-") for item in items)
            # the retraining loop under honcho: its first round (right at start) is logged as a decision
            decisions = runs / "decisions.jsonl"
            deadline = time.monotonic() + 600
            while len(decisions.read_text().splitlines()) < 2:
                assert honcho.poll() is None, f"honcho exited: {log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"no second decision: {log.read_text()[-3000:]}"
                time.sleep(1)
            last = json.loads(decisions.read_text().splitlines()[-1])
            assert last["action"] in ("promoted", "refused"), last
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)  # honcho stops its processes in turn
        try:
            honcho.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait()
    text = log.read_text()
    assert "web.1" in text and "retrain.1" in text
    with pytest.raises(httpx.HTTPError):  # the workers stopped with honcho
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
