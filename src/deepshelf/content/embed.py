"""A product's vectors in every content mode, made by the parts a run learnt (issue 19).

The content model (`models/content.py`) embeds each catalogue product once. A product added later (an HTTP
upsert) must get the same kind of vectors, or it is similar to nothing: its text vector (the text encoder), its
visual vector (the attribute heads' class probabilities of its photo and the raw photo block), its photo vector
for search (the image tower of the words-to-pictures bridge) and its hybrid vector (the weighted blocks).
`ContentEmbedder` holds those learnt parts and weights; it is saved beside the indexes (`embed.npz`, plain
arrays) and loaded by the server, which never needs torch for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepshelf.content.heads import Projection, combine, unit_rows

EMBED_FILE = "embed.npz"


class ContentEmbedder:
    """Visual, photo and hybrid vectors from a photo's raw features and the other modes' blocks.

    heads: attribute -> cosine-classifier head on raw photo features (float32 [n, 1280 + colour]);
    attribute_weights: attribute -> weight in the visual similarity (unlisted: 1);
    raw_visual_weight: weight of the raw block that orders look-alikes;
    hybrid: (mode, weight) of each block of the hybrid vector, in the order they are concatenated;
    image_tower: the words-to-pictures bridge's photo side (None: the run learnt no bridge).
    """

    def __init__(self, heads: dict[str, Projection], attribute_weights: dict[str, float], raw_visual_weight: float,
                 hybrid: list[tuple[str, float]], image_tower: Projection | None = None):
        self.heads = heads
        self.attribute_weights = dict(attribute_weights)
        self.raw_visual_weight = float(raw_visual_weight)
        self.hybrid = list(hybrid)
        self.image_tower = image_tower

    def visual(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(visual vectors [n, d_v], the image tower's input [n, d_i]) of photos' raw features [n, d_raw].

        Visual similarity = sum over attributes of w * P(both products share it) (a dot product of the heads'
        class probabilities), plus a small raw block; not unit rows: a dot product is in [0, sum(w) + raw weight].
        """
        raw = np.asarray(raw, np.float32)
        parts = [np.sqrt(self.attribute_weights.get(a, 1.0)) * head.probabilities(raw)
                 for a, head in self.heads.items()]
        visual = np.concatenate(parts + [np.sqrt(self.raw_visual_weight) * unit_rows(raw)], axis=1)
        return visual.astype(np.float32), np.concatenate(parts + [raw], axis=1).astype(np.float32)

    def photo(self, image_input: np.ndarray) -> np.ndarray | None:
        """Photo vectors [n, d] in the search bridge's space, or None without a bridge."""
        return None if self.image_tower is None else self.image_tower(image_input)

    def hybrid_vectors(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """The hybrid vectors [n, d_h] of `blocks` (mode -> [n, d_mode], zero rows where a product has none)."""
        return combine([(blocks[mode], weight) for mode, weight in self.hybrid])

    # ---- persistence: plain arrays, never pickles ----------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        arrays: dict[str, np.ndarray] = {
            "heads": np.array(list(self.heads), dtype=np.str_),
            "head_weights": np.array([self.attribute_weights.get(a, 1.0) for a in self.heads], np.float32),
            "raw_visual_weight": np.float32(self.raw_visual_weight),
            "hybrid_modes": np.array([m for m, _ in self.hybrid], dtype=np.str_),
            "hybrid_weights": np.array([w for _, w in self.hybrid], np.float32),
        }
        for n, head in enumerate(self.heads.values()):
            arrays.update(head.state(f"head{n}"))
        if self.image_tower is not None:
            arrays.update(self.image_tower.state("image_tower"))
        np.savez(Path(folder) / EMBED_FILE, **arrays)

    @classmethod
    def load(cls, folder: str | Path) -> "ContentEmbedder | None":
        """The embedder saved in `folder`, or None (indexes written before it was saved: text only)."""
        path = Path(folder) / EMBED_FILE
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as data:
            state = {k: data[k] for k in data.files}
        names = state["heads"].tolist()
        heads = {a: Projection.from_state(state, f"head{n}") for n, a in enumerate(names)}
        tower = Projection.from_state(state, "image_tower") if "image_tower.w1" in state else None
        return cls(heads, dict(zip(names, state["head_weights"].tolist())), float(state["raw_visual_weight"]),
                   list(zip(state["hybrid_modes"].tolist(), state["hybrid_weights"].tolist())), tower)
