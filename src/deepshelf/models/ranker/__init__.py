"""The two-stage learned ranker: candidate generators, shop features, LightGBM / PyTorch learners."""
