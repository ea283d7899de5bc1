"""Encoder throughput on this machine: product titles/s (text) and photos/s including JPEG decode (image).

    python -m benchmarks.encode_speed [--titles 4000] [--images 640]

Uses the `fashion` display names and photos, the embedding cache off (every item really runs the model), after
one warm-up batch. Writes "Encoder throughput" under "Product understanding" in docs/benchmarks.md. Targets
(issue 4): >= 800 titles/s and >= 150 images/s on 2 cores. The load average at the start is recorded because the
machine may be shared.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from benchmarks.lib.cli import docs_option, parser, publish
from benchmarks.lib.mdsection import machine
from deepshelf.data.datasets import load_dataset
from deepshelf.encoders.image import ImageEncoder
from deepshelf.encoders.text import TextEncoder, cpu_has_bf16


def rate(fn, n: int, repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--titles", type=int, default=4000)
    ap.add_argument("--images", type=int, default=640)
    docs_option(ap)
    args = ap.parse_args()
    load = os.getloadavg()
    catalog = load_dataset("fashion").catalog
    titles = catalog.table["title"].to_list()[: args.titles]
    paths = catalog.table["image"].to_list()[: args.images]
    rows = []
    vectors = {}
    variants = {"torch-bf16": dict(backend="torch", precision="bf16"),
                "torch-fp32": dict(backend="torch", precision="fp32"), "onnx-int8": dict(backend="onnx")}
    labels = {"torch-bf16": "text, torch bf16 autocast (the default on CPUs with bf16 units)",
              "torch-fp32": "text, torch fp32 (sentence-transformers)", "onnx-int8": "text, onnx int8"}
    if not cpu_has_bf16():  # emulated bf16 is slow and never the default there
        del variants["torch-bf16"]
    for name, options in variants.items():
        enc = TextEncoder(**options, cache=False)
        enc.encode(titles[:64])
        r = rate(lambda: vectors.__setitem__(name, enc.encode(titles)), len(titles))
        rows.append((labels[name], f"{len(titles):,} titles", r, "titles/s", 800))
    agreement = {name: float((vectors[name] * vectors["torch-fp32"]).sum(1).mean())
                 for name in vectors if name != "torch-fp32"}
    for precision in ("int8", "fp32"):
        enc = ImageEncoder(cache=False, precision=precision)
        enc.encode(paths[:32])
        r = rate(lambda: enc.encode(paths), len(paths))
        default = " (the default)" if precision == "int8" else ""
        rows.append((f"image, ONNX EfficientNet-Lite0 {precision}{default} + colour, incl. JPEG read + decode",
                     f"{len(paths):,} photos", r, "images/s", 150))
    cached = ImageEncoder(cache_dir=Path(os.environ.get("TMPDIR", "/tmp")) / "deepshelf-bench-cache")
    cached.encode(paths)
    r = rate(lambda: cached.encode(paths), len(paths))
    rows.append(("image, unchanged catalogue again (content-hash cache hit)", f"{len(paths):,} photos", r,
                 "images/s", None))
    lines = [f"Command: `python -m benchmarks.encode_speed --titles {args.titles} --images {args.images}`  ",
             f"Machine: {machine()}; load average at start {load[0]:.1f} (shared machine); measured "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.  ",
             "Embedding cache off except where stated; best of 2 passes after a warm-up batch.", "",
             "| encoder | input | throughput | target | met |", "|---|---|---:|---:|---|"]
    for name, n, value, unit, target in rows:
        lines.append(f"| {name} | {n} | {value:,.0f} {unit} | {f'>= {target}' if target else '-'} | "
                     f"{'-' if target is None else ('yes' if value >= target else 'no')} |")
    lines.append("")
    lines.append("Text vectors vs fp32 torch's, mean cosine: "
                 + ", ".join(f"{name} {value:.5f}" for name, value in agreement.items()) + ".")
    publish("\n".join(lines), args, "Product understanding", sub="Encoder throughput")


if __name__ == "__main__":
    main()
