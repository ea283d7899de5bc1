"""Stage 2 learners over the same features: LightGBM lambdarank and a small PyTorch ranker (MLP + item embedding).

Both learn from groups (one per shopper: their candidates, label 1 for an item they bought in the label period),
stop on held-out shoppers' NDCG@10 over their candidates, and save without pickles (LightGBM's text format,
a torch state_dict). `train_learner` trains one by name, as a bag of seeds (`BaggedLearner`) or as the ensemble
of both; `load_learner` reads back whichever was saved.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class RankData:
    """Feature rows grouped by shopper: rows of group g are `sizes[:g].sum()` onward, `sizes[g]` of them."""

    X: np.ndarray  # float32 [C, F]
    y: np.ndarray  # float32 [C] 1 = bought in the label period
    sizes: np.ndarray  # int64 [G]
    items: np.ndarray  # int64 [C]

    def __len__(self) -> int:
        return len(self.sizes)


def _padded(values: np.ndarray, sizes: np.ndarray, fill: float) -> np.ndarray:
    """[G, max size] array of each group's values, `fill` after its end."""
    G, L = len(sizes), int(sizes.max()) if len(sizes) else 0
    out = np.full((G, L), fill, dtype=np.float64)
    row = np.repeat(np.arange(G), sizes)
    col = np.arange(len(values)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    out[row, col] = values
    return out


def grouped_ndcg(scores: np.ndarray, labels: np.ndarray, sizes: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k over groups with a positive, ranking each group's candidates by score."""
    if not len(sizes):
        return 0.0
    s = _padded(scores, sizes, -np.inf)
    y = _padded(labels, sizes, 0.0)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    discount = 1.0 / np.log2(np.arange(2, order.shape[1] + 2))
    dcg = (np.take_along_axis(y, order, axis=1) * discount).sum(1)
    ideal = (-np.sort(-y, axis=1)[:, :k] * discount).sum(1)
    ok = ideal > 0
    return float((dcg[ok] / ideal[ok]).mean()) if ok.any() else 0.0


def platt(scores: np.ndarray, labels: np.ndarray) -> list[float]:
    """(a, b) with sigmoid(a * score + b) the probability of the label (a logistic regression on the one score):
    puts a ranking score on the scale of a binary model's logit. `a` is kept positive so the order stays."""
    from sklearn.linear_model import LogisticRegression

    if not 0 < labels.sum() < len(labels):
        return [1.0, 0.0]
    fit = LogisticRegression(C=1e6).fit(np.asarray(scores, np.float64)[:, None], labels > 0)
    a, b = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    if a <= 0:
        log.warning("ranker: the learner's scores do not rise with the label on held-out shoppers (a = %.3g)", a)
        a = 1e-6
    return [a, b]


class LightGBMLearner:
    """LightGBM lambdarank over each shopper's candidates; with objective="binary", a probability model of
    single rows (predictions are logits)."""

    name = "lightgbm"

    def __init__(self, cfg, objective: str = "lambdarank", trees: int | None = None, lr: float | None = None):
        self.cfg = cfg
        self.objective = objective
        self.trees, self.lr = trees or cfg.lgbm_trees, lr or cfg.lgbm_lr  # the prediction's cost grows with trees
        self.booster = None

    def fit(self, train: RankData, valid: RankData, names: list[str], n_items: int) -> "LightGBMLearner":
        import lightgbm as lgb

        cfg = self.cfg
        ranking = self.objective == "lambdarank"
        params = {"objective": self.objective, "learning_rate": self.lr, "num_leaves": cfg.lgbm_leaves,
                  "min_data_in_leaf": cfg.lgbm_min_leaf, "feature_fraction": 0.8, "seed": cfg.seed,
                  "deterministic": True, "num_threads": cfg.threads, "verbosity": -1}
        params.update({"metric": "ndcg", "eval_at": [10], "lambdarank_truncation_level": 20} if ranking
                      else {"metric": "binary_logloss"})
        group = (lambda d: d.sizes) if ranking else (lambda d: None)
        dtrain = lgb.Dataset(train.X, train.y, group=group(train), feature_name=names, free_raw_data=False)
        callbacks = []
        valid_sets = []
        if len(valid.y):
            valid_sets = [lgb.Dataset(valid.X, valid.y, group=group(valid), reference=dtrain)]
            callbacks = [lgb.early_stopping(cfg.patience_trees, verbose=False)]
        self.booster = lgb.train(params, dtrain, num_boost_round=self.trees, valid_sets=valid_sets,
                                 callbacks=callbacks)
        if self.booster.best_iteration > 0:
            self.booster = lgb.Booster(model_str=self.booster.model_to_string(num_iteration=self.booster.best_iteration))
        log.info("ranker: lightgbm (%s) kept %d trees", self.objective, self.booster.num_trees())
        return self

    def predict(self, X: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.booster.predict(X, raw_score=True, num_threads=1).astype(np.float32)

    def importances(self) -> dict[str, float]:
        gain = self.booster.feature_importance("gain")
        total = max(float(gain.sum()), 1e-12)
        names = self.booster.feature_name()
        return {n: round(float(g) / total, 6) for n, g in sorted(zip(names, gain), key=lambda p: -p[1])}

    def save(self, path: Path) -> None:
        (path / "lightgbm.txt").write_text(self.booster.model_to_string())

    def load(self, path: Path) -> "LightGBMLearner":
        import lightgbm as lgb

        self.booster = lgb.Booster(model_str=(path / "lightgbm.txt").read_text())
        return self


def _signed_log(X: np.ndarray) -> np.ndarray:
    return np.sign(X) * np.log1p(np.abs(X))


class TorchLearner:
    """An MLP over standardised (signed-log) features and a learned item embedding, trained listwise
    (softmax cross-entropy over each shopper's candidates)."""

    name = "torch"

    def __init__(self, cfg):
        self.cfg = cfg
        self.net = None
        self.mean = self.std = None

    def _network(self, n_features: int, n_items: int):
        import torch
        from torch import nn

        class RankerNet(nn.Module):
            def __init__(self, n_features: int, n_items: int, dim: int, hidden: int):
                super().__init__()
                self.items = nn.Embedding(n_items, dim)
                nn.init.normal_(self.items.weight, std=0.01)
                self.mlp = nn.Sequential(nn.Linear(n_features + dim, hidden), nn.ReLU(),
                                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

            def forward(self, x, items):  # x: [C, F], items: [C] -> [C]
                return self.mlp(torch.cat([x, self.items(items)], dim=1)).squeeze(1)

        return RankerNet(n_features, n_items, self.cfg.torch_dim, self.cfg.torch_hidden)

    def _inputs(self, X: np.ndarray):
        import torch

        Z = (_signed_log(X) - self.mean) / self.std
        return torch.from_numpy(np.nan_to_num(Z, nan=0.0).astype(np.float32))

    def fit(self, train: RankData, valid: RankData, names: list[str], n_items: int) -> "TorchLearner":
        import torch

        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        L = _signed_log(train.X.astype(np.float64))
        known = np.isfinite(L)
        count = np.maximum(known.sum(axis=0), 1)
        mean = np.where(known, L, 0.0).sum(axis=0) / count
        std = np.sqrt(np.where(known, (L - mean) ** 2, 0.0).sum(axis=0) / count)
        self.mean, self.std = mean.astype(np.float32), np.where(std < 1e-6, 1.0, std).astype(np.float32)
        self.n_features, self.n_items = train.X.shape[1], n_items
        self.net = self._network(self.n_features, n_items)
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.torch_lr, weight_decay=0.0)
        x_all, items_all = self._inputs(train.X), torch.from_numpy(train.items)
        starts = np.concatenate([[0], np.cumsum(train.sizes)])
        best, best_state, bad = -1.0, None, 0
        for epoch in range(cfg.torch_epochs):
            self.net.train()
            for chunk in np.array_split(rng.permutation(len(train)), max(1, len(train) // cfg.torch_groups)):
                sizes = train.sizes[chunk]
                offsets = np.cumsum(sizes) - sizes
                idx = np.repeat(starts[chunk] - offsets, sizes) + np.arange(sizes.sum())
                logits = self.net(x_all[idx], items_all[idx])
                pad = torch.from_numpy(_padded(np.arange(len(idx)), sizes, -1).astype(np.int64))
                mask = pad >= 0
                z = torch.where(mask, logits[pad.clamp(min=0)], torch.tensor(-1e9))
                y = torch.from_numpy(_padded(train.y[idx], sizes, 0.0).astype(np.float32))
                loss = -(torch.log_softmax(z, dim=1) * y).sum(1) / y.sum(1).clamp(min=1.0)
                loss = loss[y.sum(1) > 0].mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            quality = grouped_ndcg(self.predict(valid.X, valid.items), valid.y, valid.sizes) if len(valid) else 0.0
            log.info("ranker: torch epoch %d held-out NDCG@10 %.4f", epoch + 1, quality)
            if quality > best:
                best, bad = quality, 0
                best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
            else:
                bad += 1
                if bad >= cfg.patience_epochs:
                    break
        if best_state is not None:
            self.net.load_state_dict(best_state)
        return self

    def predict(self, X: np.ndarray, items: np.ndarray) -> np.ndarray:
        import torch

        self.net.eval()
        with torch.inference_mode():
            return self.net(self._inputs(X), torch.from_numpy(np.asarray(items, np.int64))).numpy().astype(np.float32)

    def importances(self) -> dict[str, float]:
        return {}

    def save(self, path: Path) -> None:
        import torch

        torch.save(self.net.state_dict(), path / "torch_ranker.pt")
        np.savez(path / "torch_inputs.npz", mean=self.mean, std=self.std)
        (path / "torch_ranker.json").write_text(json.dumps({"n_features": self.n_features, "n_items": self.n_items}))

    def load(self, path: Path) -> "TorchLearner":
        import torch

        shape = json.loads((path / "torch_ranker.json").read_text())
        self.n_features, self.n_items = shape["n_features"], shape["n_items"]
        self.net = self._network(self.n_features, self.n_items)
        self.net.load_state_dict(torch.load(path / "torch_ranker.pt", weights_only=True))
        with np.load(path / "torch_inputs.npz", allow_pickle=False) as data:
            self.mean, self.std = data["mean"], data["std"]
        return self


def _spread(model, held: RankData) -> list[float]:
    """[mean, spread] of `model`'s scores over the held-out candidates: what standardises them before averaging
    (a listwise learner's scores have no fixed origin or scale)."""
    s = model.predict(held.X, held.items) if len(held) else np.zeros(1)
    return [float(s.mean()), float(max(s.std(), 1e-9))]


def _standardised_mean(scores, scales) -> np.ndarray:
    """float32 [C]: the mean over members of (score - mean) / spread, one `scales` entry per member's scores."""
    total = np.zeros(len(scores[0]), np.float64)
    for s, (mean, std) in zip(scores, scales):
        total += (s - mean) / std
    return (total / len(scales)).astype(np.float32)


class EnsembleLearner:
    """The mean of the members' scores, each standardised by its mean and spread over the held-out candidates."""

    name = "ensemble"

    def __init__(self, cfg):
        self.cfg = cfg
        self.members: dict = {}
        self.scale: dict[str, list[float]] = {}

    def combine(self, members: dict, held: RankData) -> "EnsembleLearner":
        self.members = dict(members)
        self.scale = {n: _spread(m, held) for n, m in self.members.items()}
        return self

    def predict(self, X: np.ndarray, items: np.ndarray) -> np.ndarray:
        return _standardised_mean([m.predict(X, items) for m in self.members.values()],
                                  [self.scale[n] for n in self.members])

    def importances(self) -> dict[str, float]:
        return {}

    def save(self, path: Path) -> None:
        for m in self.members.values():
            m.save(path)
        (path / "ensemble.json").write_text(json.dumps(self.scale))

    def load(self, path: Path) -> "EnsembleLearner":
        self.scale = json.loads((path / "ensemble.json").read_text())
        self.members = {n: load_learner(n, self.cfg, path) for n in self.scale}
        return self


class BaggedLearner:
    """Several members of one learner, each trained with its own seed (initial weights, batch order, the negatives
    drawn for it), scoring the mean of their scores, each standardised by its mean and spread over the held-out
    candidates (a listwise learner's scores have no fixed origin or scale). The averaging is aimed at the run-to-run
    differences of a single member (measured on Online Retail: docs/benchmarks.md, "Deep parts of the ranker")."""

    def __init__(self, cfg, member: str):
        self.cfg = cfg
        self.name = member  # what the ranker saves and refits: the member's learner, the bag size is the config's
        self.members: list = []
        self.scale: list[list[float]] = []
        self._stacked = None  # torch members' parameters stacked for one batched pass (`_torch_scores`)

    def combine(self, members: list, held: RankData) -> "BaggedLearner":
        self.members, self._stacked = list(members), None
        self.scale = [_spread(m, held) for m in self.members]
        return self

    def predict(self, X: np.ndarray, items: np.ndarray) -> np.ndarray:
        scores = self._torch_scores(X, items) if self.name == "torch" else \
            [m.predict(X, items) for m in self.members]
        return _standardised_mean(scores, self.scale)

    def _torch_scores(self, X: np.ndarray, items: np.ndarray) -> np.ndarray:
        """float32 [members, C]: each torch member's `predict` in one batched pass over the stacked layers: one
        member's per-call overhead for the bag, not one per member (benchmarks/ranker_latency.py: docs/benchmarks.md,
        "Deep parts of the ranker")."""
        import torch

        if self._stacked is None:
            nets = [m.net for m in self.members]
            layers = [[layer for layer in n.mlp if isinstance(layer, torch.nn.Linear)] for n in nets]
            self._stacked = (
                torch.stack([n.items.weight.detach() for n in nets]),  # [M, n_items, dim]
                [(torch.stack([ls[j].weight.detach().T for ls in layers]),  # [M, in, out]
                  torch.stack([ls[j].bias.detach() for ls in layers])[:, None, :]) for j in range(len(layers[0]))],
                torch.from_numpy(np.stack([m.mean for m in self.members])[:, None, :]),
                torch.from_numpy(np.stack([m.std for m in self.members])[:, None, :]))
        embedding, layers, mean, std = self._stacked
        with torch.inference_mode():
            z = torch.nan_to_num((torch.from_numpy(_signed_log(X)) - mean) / std, nan=0.0)  # as `_inputs`, [M, C, F]
            x = torch.cat([z.float(), embedding[:, torch.from_numpy(np.asarray(items, np.int64))]], dim=2)
            for j, (weight, bias) in enumerate(layers):
                x = torch.baddbmm(bias, x, weight)
                if j < len(layers) - 1:
                    x = torch.relu(x)
            return x.squeeze(2).numpy().astype(np.float32)

    def importances(self) -> dict[str, float]:
        shares = [m.importances() for m in self.members]
        names = {n for s in shares for n in s}
        mean = {n: round(sum(s.get(n, 0.0) for s in shares) / len(shares), 6) for n in names}
        return dict(sorted(mean.items(), key=lambda p: -p[1]))

    def save(self, path: Path) -> None:
        for i, m in enumerate(self.members):
            (path / f"{self.name}_bag{i}").mkdir(exist_ok=True)
            m.save(path / f"{self.name}_bag{i}")
        (path / f"{self.name}_bag.json").write_text(json.dumps({"scale": self.scale}))

    def load(self, path: Path) -> "BaggedLearner":
        self.scale, self._stacked = json.loads((path / f"{self.name}_bag.json").read_text())["scale"], None
        self.members = [LEARNERS[self.name](self.cfg).load(path / f"{self.name}_bag{i}")
                        for i in range(len(self.scale))]
        return self


LEARNERS = {"lightgbm": LightGBMLearner, "torch": TorchLearner, "ensemble": EnsembleLearner}


def load_learner(name: str, cfg, path: Path):
    """The learner `name` saved in `path` by `train_learner`: a bag when one was saved there, else a single one."""
    if (path / f"{name}_bag.json").exists():
        return BaggedLearner(cfg, name).load(path)
    return LEARNERS[name](cfg).load(path)


def train_learner(name: str, cfg, draw, held: RankData, names: list[str], n_items: int, bag: int = 1):
    """The learner `name` ("lightgbm", "torch", or "ensemble": both, standardised and averaged).

    `draw(i)` is member i's (training part, early-stopping part): member 0's are the single learner's; member i
    learns with seed `cfg.seed + i`. With `bag` > 1, each learner is a `BaggedLearner` of `bag` members, their
    scores standardised over `held`.
    """
    if name == "ensemble":
        both = {n: train_learner(n, cfg, draw, held, names, n_items, bag) for n in ("lightgbm", "torch")}
        return EnsembleLearner(cfg).combine(both, held)

    def member(i: int):
        member_cfg = cfg if i == 0 else cfg.model_copy(update={"seed": cfg.seed + i})
        return LEARNERS[name](member_cfg).fit(*draw(i), names, n_items)

    if bag == 1:
        return member(0)
    return BaggedLearner(cfg, name).combine([member(i) for i in range(bag)], held)


def sample_negatives(data: RankData, keep: int, rng: np.random.Generator) -> RankData:
    """Every positive and at most `keep` random negatives of each group."""
    group = np.repeat(np.arange(len(data)), data.sizes)
    key = np.where(data.y > 0, -1.0, rng.random(len(data.y)))  # positives sort first
    order = np.lexsort((key, group))
    start = np.repeat(np.cumsum(data.sizes) - data.sizes, data.sizes)
    position = np.empty(len(order), np.int64)
    position[order] = np.arange(len(order)) - start
    positives = np.bincount(group, weights=data.y > 0, minlength=len(data)).astype(np.int64)
    rows = position < positives[group] + keep
    sizes = np.bincount(group[rows], minlength=len(data))
    return RankData(data.X[rows], data.y[rows], sizes, data.items[rows])
