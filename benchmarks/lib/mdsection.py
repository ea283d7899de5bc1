"""Replace one `## Section` of docs/benchmarks.md, or one `### subsection` of it, leaving the other benchmarks'
sections as they are."""

from __future__ import annotations

import platform
import re
from pathlib import Path

from benchmarks.lib import ROOT

DOC = ROOT / "docs" / "benchmarks.md"
HEADER = "# deepshelf benchmarks\n\nEach section is written by the script named in it; numbers are measured, never typed in.\n"


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def write_section(title: str, body: str, doc: Path = DOC) -> None:
    doc.parent.mkdir(parents=True, exist_ok=True)
    text = doc.read_text() if doc.exists() else HEADER
    section = f"## {title}\n\n{body.strip()}\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    doc.write_text(text)


def write_in_section(title: str, sub: str, body: str, doc: Path = DOC) -> None:
    """Replace the `### sub` subsection of the `## title` section (the "Product understanding" section's parts),
    or add it at the section's end, the section's other subsections as they are."""
    text = doc.read_text() if doc.exists() else ""
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    section = found.group(1) if found else ""
    block = f"### {sub}\n\n{body.strip()}\n\n"
    pattern = re.compile(rf"^### {re.escape(sub)}\n.*?(?=^### |\Z)", re.S | re.M)
    section = pattern.sub(lambda _: block, section) if pattern.search(section) else section.rstrip() + "\n\n" + block
    write_section(title, section.strip(), doc)


def _subsection(title: str) -> re.Pattern:
    """A `### Title` subsection up to the next heading of level 2 or 3 (the exact title: `### A` is not `### A, b`)."""
    return re.compile(rf"^{re.escape(title)}\n.*?(?=^### |^## |\Z)", re.S | re.M)


def read_subsection(title: str, doc: Path = DOC) -> list[str]:
    """The subsection's lines as the file has them now (with one trailing empty line), or [] when it has none."""
    text = doc.read_text() if doc.exists() else ""
    match = _subsection(title).search(text)
    return match.group(0).rstrip().splitlines() + [""] if match else []


def write_subsection(title: str, lines: list[str], after: str | None = None, doc: Path = DOC) -> None:
    """Replace the subsection alone, re-reading the file right before (others edit other sections); a missing one
    goes right after the subsection `after` when that exists."""
    text, block = doc.read_text(), "\n".join(lines).rstrip() + "\n\n\n"
    pattern = _subsection(title)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    elif after and (anchor := _subsection(after).search(text)):
        text = text[: anchor.end()].rstrip() + "\n\n\n" + block + text[anchor.end():]
    else:
        raise SystemExit(f"{doc} has no '{title}' subsection to replace"
                         + (f" nor '{after}' to put it after" if after else ""))
    doc.write_text(text)
