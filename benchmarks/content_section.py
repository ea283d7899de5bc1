"""Replace one `### subsection` of the "Product understanding" section of docs/benchmarks.md."""

from __future__ import annotations

import re

from mdsection import DOC, write_section

TITLE = "Product understanding"


def write_subsection(sub: str, body: str) -> None:
    text = DOC.read_text() if DOC.exists() else ""
    found = re.search(rf"^## {re.escape(TITLE)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    section = found.group(1) if found else ""
    block = f"### {sub}\n\n{body.strip()}\n\n"
    pattern = re.compile(rf"^### {re.escape(sub)}\n.*?(?=^### |\Z)", re.S | re.M)
    section = pattern.sub(lambda _: block, section) if pattern.search(section) else section.rstrip() + "\n\n" + block
    write_section(TITLE, section.strip())
