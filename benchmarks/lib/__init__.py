"""Helpers the benchmark entry scripts share; nothing here runs a benchmark by itself or does work at import."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
