"""Colour words by what they look like: a shopper's colour name the catalogue's labels lack ("crimson", "ivory",
"wine") read as the catalogue colour label(s) nearest to it in CIELAB, a perceptual colour space (scikit-image's
conversion and CIEDE2000 colour difference).

Colour names and their sRGB values come from matplotlib's tables (XKCD's survey of what people call colours, ~950
names, then the CSS4 names, ~150); a catalogue label gets its own colour from the same tables ("Navy Blue" ->
navy blue, "Sea Green" -> seagreen), and a label the tables lack ("Multi", "Skin") simply never matches. Works for
any catalogue with colour labels; nothing here is specific to one shop.

    look = ColourLook(["Red", "Maroon", "Purple", "White"])
    look.is_name(["scarlet"])          # True
    look.nearest(["scarlet"])          # {"Red"}
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from deepshelf.content.query.text import tokens


@lru_cache(maxsize=1)
def names() -> dict[str, tuple[float, float, float]]:
    """Colour name (its lower-case words joined by one space) -> sRGB in [0, 1]. XKCD's names first: they are the
    words people use; CSS4's fill in the rest ("darkslategray" is also filed as "dark slate gray" only when XKCD has
    no such name, which CSS's run-together names never are)."""
    from matplotlib import colors  # a dependency already; imported here so that a search without colours skips it

    out: dict[str, tuple[float, float, float]] = {}
    for name, hexa in colors.XKCD_COLORS.items():
        out.setdefault(" ".join(tokens(name.removeprefix("xkcd:"))), colors.to_rgb(hexa))
    for name, hexa in colors.CSS4_COLORS.items():
        out.setdefault(" ".join(tokens(name)), colors.to_rgb(hexa))
    return out


def lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (float [..., 3]) -> CIELAB (D65 white), float64 [..., 3] (scikit-image's conversion)."""
    from skimage.color import rgb2lab

    return rgb2lab(np.asarray(rgb, np.float64))


def _label_rgb(label: str, table: dict) -> tuple[float, float, float] | None:
    words = tokens(label)
    return table.get(" ".join(words)) or table.get("".join(words))  # "Sea Green" -> "sea green" or "seagreen"


class ColourLook:
    """The catalogue's colour labels placed in CIELAB, and the reading of a colour name by its nearest labels
    (CIEDE2000, the CIE's colour difference: plain Lab distance puts XKCD's "violet" nearer Blue than Purple).

    `nearest` settings: `lightness`, the divisor of lightness differences (CIEDE2000's kL; 2 weighs hue more, as
    textile tolerances do); `margin`, labels within this many units of the nearest are read too (0: the nearest
    only); `min_products`, a label fewer products have is never the reading (a "Fluorescent Green" of five
    products would leave a search nothing to show)."""

    def __init__(self, labels: list[str], counts: np.ndarray | None = None):
        table = names()
        counts = np.ones(len(labels), np.int64) if counts is None else np.asarray(counts)
        placed = [(v, int(c), _label_rgb(v, table)) for v, c in zip(labels, counts)]
        placed = [p for p in placed if p[2] is not None]
        self.labels = [v for v, _, _ in placed]
        self.counts = np.array([c for _, c, _ in placed], np.int64)
        self._lab = lab(np.array([rgb for _, _, rgb in placed], np.float64).reshape(-1, 3))
        self.longest = max(len(n.split()) for n in table)

    @staticmethod
    def is_name(words: list[str]) -> bool:
        """Whether `words` (lower case) are a colour name of the tables."""
        return " ".join(words) in names()

    def nearest(self, words: list[str], lightness: float = 1.0, margin: float = 0.0,
                min_products: int = 1) -> set[str]:
        """The catalogue labels `words` (a colour name of the tables) look like: the nearest by CIEDE2000, and any
        within `margin` of it. Empty when `words` name no colour or no label qualifies."""
        rgb = names().get(" ".join(words))
        ok = self.counts >= min_products
        if rgb is None or not ok.any():
            return set()
        dist = delta_e2000(self._lab[ok], lab(np.array(rgb)), lightness)
        labels = [v for v, k in zip(self.labels, ok) if k]
        return {v for v, x in zip(labels, dist) if x <= dist.min() + margin}

    def near(self, labels, max_difference: float) -> set[str]:
        """The labels within `max_difference` (CIEDE2000) of any of `labels` (those the tables place), `labels`
        themselves included."""
        at = [self.labels.index(v) for v in labels if v in self.labels]
        if not at:
            return set()
        dist = np.min([delta_e2000(self._lab, self._lab[i]) for i in at], axis=0)
        return {v for v, d in zip(self.labels, dist) if d <= max_difference}


def delta_e2000(lab1: np.ndarray, lab2: np.ndarray, kl: float = 1.0) -> np.ndarray:
    """CIEDE2000 colour difference between Lab colours (broadcasting [..., 3]); `kl` the lightness weight's divisor
    (scikit-image's implementation)."""
    from skimage.color import deltaE_ciede2000

    lab1, lab2 = np.broadcast_arrays(np.asarray(lab1, np.float64), np.asarray(lab2, np.float64))
    return deltaE_ciede2000(lab1, lab2, kL=kl)
