"""deepshelf's slow quality and speed runs, each an entry script run as a module from the repository root:

    .venv/bin/python -m benchmarks.serve_load --help

What several of them share (load generation, the noise probe, docs/benchmarks.md sections, training logs, the bare
FastAPI app, the command-line tail) is in `benchmarks.lib`. Their results go to docs/benchmarks.md; recorded run
logs to benchmarks/results/.
"""
