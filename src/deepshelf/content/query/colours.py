"""Colour words by what they look like: a shopper's colour name the catalogue's labels lack ("crimson", "ivory",
"wine") read as the catalogue colour label(s) nearest to it in CIELAB, a perceptual colour space.

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
    """sRGB in [0, 1] (float [..., 3]) -> CIELAB (D65 white), float64 [..., 3]: the standard formulas (IEC 61966-2-1
    for sRGB's transfer curve and its XYZ matrix, CIE 1976 for L*a*b*)."""
    rgb = np.asarray(rgb, np.float64)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = linear @ m.T / np.array([0.95047, 1.0, 1.08883])
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


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

def delta_e2000(lab1: np.ndarray, lab2: np.ndarray, kl: float = 1.0) -> np.ndarray:
    """CIEDE2000 colour difference between Lab colours (broadcasting [..., 3]); `kl` the lightness weight's divisor."""
    L1, a1, b1 = np.moveaxis(np.asarray(lab1, np.float64), -1, 0)
    L2, a2, b2 = np.moveaxis(np.asarray(lab2, np.float64), -1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar ** 7 / (c_bar ** 7 + 25.0 ** 7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dl, dc = L2 - L1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0, dh)
    dH = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_bar, c_barp = (L1 + L2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_bar = np.where(c1p * c2p == 0, h_sum,
                     np.where(np.abs(h1p - h2p) <= 180, h_sum / 2,
                              np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2)))
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    sl = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    sc = 1 + 0.045 * c_barp
    sh = 1 + 0.015 * c_barp * t
    rt = -2 * np.sqrt(c_barp ** 7 / (c_barp ** 7 + 25.0 ** 7)) * np.sin(np.radians(60 * np.exp(-((h_bar - 275) / 25) ** 2)))
    return np.sqrt((dl / (kl * sl)) ** 2 + (dc / sc) ** 2 + (dH / sh) ** 2 + rt * (dc / sc) * (dH / sh))
