"""Product-understanding quality on `fashion`: held-out attribute P@10 by mode, words -> pictures, FAISS recall.

    python -m benchmarks.content_quality [--out runs/fashion-content] [--set key=value ...]

Trains the content model through `deepshelf.runs.pipeline.train_run` (the path `deepshelf train --dataset fashion --model
content` takes), so the numbers are the ones the run's metrics.json records. Held-out products: numeric id
divisible by 5 (1,917 of 9,583); no learned head sees their photos or names. P@10 = share of a held-out
product's 10 nearest neighbours (itself excluded, gallery = all products with a vector) sharing its article type
/ base colour. Words -> pictures: query = the held-out product's display name through the text tower, retrieval
by aligned photo vectors only. Baselines without any learning (raw ImageNet features, raw text vectors) are
computed on the same queries. Writes "Content quality (fashion)" under "Product understanding".
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from benchmarks.lib.cli import docs_option, parser, publish
from benchmarks.lib.mdsection import machine
from deepshelf.content.heads import unit_rows
from deepshelf.content.quality import attribute_precision, heldout_mask
from deepshelf.content.similar import SimilarIndex
from deepshelf.data.datasets import load_dataset
from deepshelf.encoders.image import ImageEncoder
from deepshelf.encoders.text import TextEncoder
from deepshelf.runs.config import build_train_config
from deepshelf.runs.pipeline import train_run

TARGETS = {"visual": (0.85, 0.60), "words_to_pictures": (0.70, 0.45)}


def baselines(catalog) -> dict[str, dict[str, float]]:
    """P@10 of held-out products with frozen encoder vectors only (no learning)."""
    ids = catalog.table["item"].to_numpy().astype(str)
    held = np.flatnonzero(heldout_mask(ids))
    attrs = {"category": catalog.table["category"].to_numpy(), "baseColour": catalog.table["baseColour"].to_numpy()}
    enc = ImageEncoder().encode(catalog.table["image"].to_list())
    text = TextEncoder().encode(catalog.texts())
    titles = TextEncoder().encode(catalog.table["title"].to_list())
    out = {}
    for name, vecs in (("raw ImageNet features (visual)", unit_rows(enc.features)),
                       ("raw ImageNet + colour descriptor (visual)", enc.combined()),
                       ("raw MiniLM product text (title + category)", text),
                       ("raw MiniLM display name only (text)", titles)):
        q = held[enc.ok[held]] if "visual" in name else held
        out[name] = attribute_precision(vecs[q], q, vecs, attrs, 10, gallery_ok=enc.ok if "visual" in name else None)
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", default="runs/fashion-content")
    ap.add_argument("--set", dest="overrides", nargs="*", default=[])
    docs_option(ap)
    args = ap.parse_args()
    cfg = build_train_config("fashion", "content", None, args.overrides)
    start = time.perf_counter()
    out = train_run(cfg, Path(args.out), overwrite=True)
    seconds = time.perf_counter() - start
    metrics = json.loads((out / "metrics.json").read_text())
    content = metrics["content"]
    index = SimilarIndex.load(out)
    recall = {m: index.check_recall(m, k=10, sample=2000) for m in index.modes}
    base = baselines(load_dataset("fashion").catalog)
    sets = " ".join(f"--set {o}" for o in args.overrides)
    lines = [f"Command: `python -m benchmarks.content_quality --out {args.out}{' ' + sets if sets else ''}` "
             f"(= `deepshelf train --dataset fashion --model content --out {args.out}{' ' + sets if sets else ''}`)  ",
             f"Machine: {machine()}; run {seconds:.0f} s (default encoders: text bf16/fp32 "
             "torch, photos int8 ONNX; embeddings already in the cache are not recomputed); "
             f"measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.  ",
             f"Held-out products (id % 5 == 0): {content['heldout_items']:,}; gallery = all products with a vector; "
             "the product itself is never counted as its own neighbour.", "",
             "| mode (held-out queries) | article type P@10 | base colour P@10 | target |", "|---|---:|---:|---|"]
    for name, values in base.items():
        lines.append(f"| {name}, no learning | {values['category']:.3f} | {values['baseColour']:.3f} | - |")
    labels = {"visual": "visual: catalogue-tuned photo heads",
              "text": "text: MiniLM product text (title + category)",
              "hybrid": "hybrid: text + visual",
              "words_to_pictures": "words -> pictures: display name -> photo vectors"}
    for mode in ("visual", "text", "hybrid", "words_to_pictures"):
        if mode in content:
            t = TARGETS.get(mode)
            v = content[mode]
            met = t is not None and v["category"] >= t[0] and v["baseColour"] >= t[1]
            target = "-" if t is None else f">= {t[0]} / >= {t[1]}: {'met' if met else 'NOT met'}"
            lines.append(f"| {labels[mode]} | {v['category']:.3f} | {v['baseColour']:.3f} | {target} |")
    lines += ["", "FAISS (HNSW, M=32, efSearch=128) recall@10 against exact top-k, 2,000 random products: " +
              ", ".join(f"{m} {r:.4f}" for m, r in recall.items()) + "."]
    publish("\n".join(lines), args, "Product understanding", sub="Content quality (fashion)")


if __name__ == "__main__":
    main()
