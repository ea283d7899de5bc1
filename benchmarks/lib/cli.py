"""The command-line shape the entry scripts share: a parser described by the script's docstring, the option that
says whether the run's text goes into docs/benchmarks.md, and the tail that prints the text and writes it there.

    ap = parser(__doc__)
    ap.add_argument("--titles", type=int, default=4000)
    docs_option(ap)                      # --no-write: written unless given
    args = ap.parse_args()
    ...
    publish("\\n".join(lines), args, "Product understanding", sub="Encoder throughput")

Each script keeps the option name its commands were written with: `--no-write` and `--print-only` leave the file
alone when given, `--write-docs` and `--write` write it only when given.
"""

from __future__ import annotations

import argparse

from benchmarks.lib.mdsection import write_in_section, write_section

SKIP_FLAGS = ("--no-write", "--print-only")  # the others ask for the write
WRITE_FLAGS = ("--write-docs", "--write")


def parser(doc: str, whole: bool = False) -> argparse.ArgumentParser:
    """A parser described by the docstring's first paragraph, or by all of it as written (`whole`: its usage
    lines are the help)."""
    if whole:
        return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    return argparse.ArgumentParser(description=doc.split("\n\n")[0])


def docs_option(ap: argparse.ArgumentParser, flag: str = "--no-write", help: str | None = None) -> None:
    """Add the option that decides whether `publish` writes docs/benchmarks.md (see the module's docstring)."""
    if flag not in SKIP_FLAGS + WRITE_FLAGS:
        raise ValueError(f"{flag}: not one of {SKIP_FLAGS + WRITE_FLAGS}")
    ap.add_argument(flag, action="store_true", help=help)
    ap.set_defaults(docs_flag=flag)


def writes_docs(args: argparse.Namespace) -> bool:
    """Whether this run's command line asks for docs/benchmarks.md to be written."""
    given = getattr(args, args.docs_flag.lstrip("-").replace("-", "_"))
    return not given if args.docs_flag in SKIP_FLAGS else given


def publish(body: str, args: argparse.Namespace, title: str, sub: str | None = None,
            shown: str | None = None) -> bool:
    """Print the run's text (or `shown`, when the console gets another form of it) and, when the command line
    asks, write it as the `## title` section of docs/benchmarks.md, or as the `### sub` subsection of that section.
    Returns whether it wrote."""
    print(body if shown is None else shown)
    if not writes_docs(args):
        return False
    if sub is None:
        write_section(title, body)
    else:
        write_in_section(title, sub, body)
    return True


def apply_sets(params: dict, items: list[str]) -> dict:
    """`params` with each `--set key=value` applied (values read as `deepshelf train --set` reads them)."""
    from deepshelf.runs.config import parse_value

    out = dict(params)
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set {item!r}: expected key=value")
        out[key.strip()] = parse_value(raw)
    return out
