"""docs/settings.md is generated from engine/settings.py and kept current: every setting a row with its variable,
default and the comment written beside it."""

from pathlib import Path

from deepshelf.engine.settings import Settings
from deepshelf.engine.settings_reference import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_the_settings_reference_is_current():
    assert DOC.read_text() == render(), ("docs/settings.md is stale: python -m deepshelf.engine.settings_reference "
                                         "> docs/settings.md")


def test_every_setting_has_a_described_row():
    rows = {line.split("|")[1].strip(" `"): line for line in render().splitlines() if line.startswith("| `DEEPSHELF_")}
    assert set(rows) == {f"DEEPSHELF_{name.upper()}" for name in Settings.model_fields}
    assert all(not line.rstrip().endswith("| - |") for line in rows.values())  # a setting without a word is a gap
    assert "| `100` | > 0 | longest list a request may ask for" in rows["DEEPSHELF_MAX_K"]
    assert "| true | - | hide out-of-stock products" in rows["DEEPSHELF_DEFAULT_IN_STOCK"]
    assert "## Freshness" in render()  # the module's sections group the table
