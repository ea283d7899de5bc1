"""The settings reference (docs/settings.md), generated from `settings.py` itself: every `Settings` field as its
`DEEPSHELF_*` variable, type, default, bounds and the comments written beside it, grouped by the module's
`# ---- section ----` lines. tests/engine/test_settings_reference.py fails when the file is not current.

    python -m deepshelf.engine.settings_reference > docs/settings.md
"""

from __future__ import annotations

import ast
import inspect
import re
import typing

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from deepshelf.engine import settings as settings_module
from deepshelf.engine.settings import Settings

_SECTION = re.compile(r"#\s*-{3,}\s*(.*?)\s*-*\s*$")


def _comment_of(line: str) -> str:
    """The comment at the end of a source line ('' when none); the settings' defaults hold no '#'."""
    _, sep, comment = line.partition("  # ")
    return comment.strip() if sep else ""


def _described_fields() -> list[tuple[str, str, str]]:
    """(section, field name, description) in source order, from the comments around each field."""
    source = inspect.getsource(settings_module)
    lines = source.splitlines()
    cls = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    section, out, last_end = "server", [], cls.lineno
    for node in cls.body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        above: list[str] = []
        for text in (line.strip() for line in lines[last_end:node.lineno - 1]):
            head = _SECTION.match(text)
            if head:
                section, above = head.group(1), []
            elif text.startswith("#"):
                above.append(text.lstrip("#").strip())
            elif not text:
                above = []
        inline = _comment_of(lines[node.end_lineno - 1])
        out.append((section, node.target.id, " ".join([*above, inline]).strip()))
        last_end = node.end_lineno
    return out


def _type_name(annotation) -> str:
    if annotation is SecretStr:
        return "secret text"
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        return f"{_type_name(args[0])} or none"
    if typing.get_origin(annotation) is dict:
        return "JSON object"
    return {str: "text", int: "integer", float: "number", bool: "true/false"}.get(annotation,
                                                                                   getattr(annotation, "__name__", str(annotation)))


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None:
        return "none"
    if value == "" or value == {}:
        return "(empty)"
    if isinstance(value, bool):
        return str(value).lower()
    return f"`{value}`"


def _bounds(field: FieldInfo) -> str:
    words = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
    found = [f"{words[k]} {getattr(m, k)}" for m in field.metadata for k in words if getattr(m, k, None) is not None]
    return ", ".join(found)


def render() -> str:
    """docs/settings.md's text."""
    fields = Settings.model_fields
    out = ["# Settings reference", "",
           "Generated from `src/deepshelf/engine/settings.py` by `python -m deepshelf.engine.settings_reference > "
           "docs/settings.md` (a test fails when it is not current). Every setting is an environment variable of "
           "`deepshelf serve` (and of the demo's server); `serve --run` and `--database` set the first two. "
           "Durations are in seconds.", ""]
    current = None
    for section, name, description in _described_fields():
        if section != current:
            out += ["", f"## {section[:1].upper()}{section[1:]}", "",
                    "| variable | type | default | bounds | what |", "|---|---|---|---|---|"]
            current = section
        field = fields[name]
        text = description.replace("|", "\\|") or "-"
        out.append(f"| `DEEPSHELF_{name.upper()}` | {_type_name(field.annotation)} | {_default(field)} | "
                   f"{_bounds(field) or '-'} | {text} |")
    return "\n".join(out).replace("\n\n\n", "\n\n") + "\n"


if __name__ == "__main__":
    print(render(), end="")
