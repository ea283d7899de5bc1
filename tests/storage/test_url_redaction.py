"""No message shows a database password (issue 27, F11): every URL a store error, the CLI or a log line quotes is
redacted, malformed URLs included (a misspelt scheme, a bad port or percent-escape, an `@` in the password, a
`password=` parameter, a libpq keyword string), and a password a driver quotes alone is masked too."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from deepshelf.errors import DeepshelfError
from deepshelf.storage import open_store
from deepshelf.storage.urls import redact, redact_url

SECRET = "Hunter2Secret"
MALFORMED = [
    f"postgresq://shop:{SECRET}@127.0.0.1:5432/db",  # scheme misspelt
    f"postgresql://shop:{SECRET}@127.0.0.1:notaport/db",
    f"postgresql://shop:{SECRET[:4]}%ZZ{SECRET[4:]}@127.0.0.1:5432/db",  # a bad percent-escape: quoted alone
    f"postgresql://shop:{SECRET}@127.0.0.1:1/db",  # nothing listens
    f"postgresql://shop:Hun@{SECRET}@127.0.0.1:1/db",  # an unencoded @: libpq reads part of it as the host
    f"postgresql://127.0.0.1:1/db?password={SECRET}&bogus=1",
    f"postgresql://shop:{SECRET}@[::1/db",  # IPv6 bracket never closed
    f"host=127.0.0.1 password={SECRET}",  # a libpq keyword string is not a URL
]


@pytest.mark.parametrize("url", MALFORMED)
def test_store_errors_never_show_the_password(url, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DeepshelfError) as err:
        open_store(url, timeout_s=1).close()
    assert SECRET not in str(err.value) and "Hunter" not in str(err.value), err.value
    assert SECRET not in caplog.text


def test_redaction_of_urls_inside_messages():
    assert redact_url(f"postgresql://shop:{SECRET}@db:5432/x") == "postgresql://shop@db:5432/x"
    assert redact_url(f"postgresql://db/x?sslmode=require&password={SECRET}") == \
        "postgresql://db/x?sslmode=require&password=***"
    text = f"cannot open 'postgres://a:{SECRET}@h/x' nor host=h password='{SECRET}'"
    assert SECRET not in redact(text) and "postgres://a@h/x" in redact(text)
    assert redact(f"token {SECRET} quoted alone", f"postgresql://a:{SECRET}@h/x") == "token *** quoted alone"


def test_the_cli_does_not_echo_the_password(tmp_path):
    run = subprocess.run([sys.executable, "-m", "deepshelf", "retrain", "--database",
                          f"postgresq://shop:{SECRET}@127.0.0.1:1/db", "--runs-dir", str(tmp_path), "--once"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert SECRET not in run.stdout + run.stderr, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
