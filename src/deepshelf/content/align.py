"""Words -> pictures: a contrastive bridge between the frozen text encoder and the frozen image features.

No CLIP-class model is available offline, so the bridge is learned from the shop's own (title, photo) pairs:
two small towers, one per modality, trained with the symmetric InfoNCE loss of CLIP (Radford et al. 2021;
van den Oord et al. 2018) so that a title and its product's photo meet on the unit sphere. Products with the
same title are treated as positives of each other (not as negatives), which matters in a catalogue where many
products share a name such as "Men Black Socks". Optional attribute labels add a small cosine-classifier term on
both towers, which keeps the shared space organised by what shoppers search for (type, colour).

A shopper's words then find products by their photos alone (`image_tower(photo) . text_tower(query)`), also where
a product's own text is poor or missing. Only rows in `train_mask` are ever seen in training.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from deepshelf.content.heads import Projection, ProjectionTrainingConfig, standardiser, torch_tower, train_towers


class AlignConfig(ProjectionTrainingConfig):
    dim: int = Field(default=128, ge=4)
    batch_size: int = Field(default=512, ge=8)
    temperature: float = Field(default=0.07, gt=0)
    label_weight: float = Field(default=0.5, ge=0)  # weight of the attribute term (0: pure InfoNCE)


def train_alignment(text_x: np.ndarray, image_x: np.ndarray, train_mask: np.ndarray,
                    labels: dict[str, np.ndarray] | None = None, pair_ids: np.ndarray | None = None,
                    config: AlignConfig | None = None) -> tuple[Projection, Projection]:
    """Train (text tower, image tower) on the rows of `train_mask`.

    text_x: float32 [n, d_t] frozen text vectors of the titles; image_x: float32 [n, d_i] frozen photo vectors;
    pair_ids: int [n], rows with equal ids (e.g. identical titles) are positives of each other;
    labels: name -> int64 [n] class codes (-1 unknown) for the auxiliary term.
    """
    import torch
    import torch.nn.functional as F

    cfg = config or AlignConfig()
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rows = np.flatnonzero(train_mask)
    t_mean, t_scale = standardiser(text_x[rows])
    i_mean, i_scale = standardiser(image_x[rows])
    xt = torch.from_numpy(((text_x[rows] - t_mean) / t_scale).astype(np.float32))
    xi = torch.from_numpy(((image_x[rows] - i_mean) / i_scale).astype(np.float32))
    pid = torch.from_numpy(np.arange(len(rows)) if pair_ids is None else np.asarray(pair_ids)[rows])
    text_tower = torch_tower(text_x.shape[1], cfg.hidden, cfg.dim, cfg.dropout, 0.0)
    image_tower = torch_tower(image_x.shape[1], cfg.hidden, cfg.dim, cfg.dropout, 0.1)
    labels = {a: c for a, c in (labels or {}).items() if (c[rows] >= 0).any()} if cfg.label_weight > 0 else {}
    ys = {a: torch.from_numpy(c[rows]) for a, c in labels.items()}
    prototypes = torch.nn.ParameterDict({a: torch.nn.Parameter(torch.randn(int(y.max()) + 1, cfg.dim) * 0.1)
                                         for a, y in ys.items()})
    towers = torch.nn.ModuleDict({"text": text_tower, "image": image_tower, "prototypes": prototypes})

    def loss_of(net, batch):
        zt = F.normalize(net["text"](xt[batch]), dim=1)  # (b, dim)
        zi = F.normalize(net["image"](xi[batch]), dim=1)  # (b, dim)
        logits = zt @ zi.T / cfg.temperature  # (b, b): text i against photo j
        positive = (pid[batch][:, None] == pid[batch][None, :]).float()
        target = positive / positive.sum(1, keepdim=True)  # soft targets spread over same-title pairs
        loss = 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
                      + torch.sum(-target.T * F.log_softmax(logits.T, 1), 1).mean())
        for a, y in ys.items():
            yb = y[batch]
            known = yb >= 0
            if known.any():
                proto = F.normalize(net["prototypes"][a], dim=1)
                for z in (zt, zi):
                    loss = loss + cfg.label_weight * F.cross_entropy(16.0 * z[known] @ proto.T, yb[known])
        return loss

    train_towers(towers, loss_of, len(rows), cfg)
    return Projection.from_tower(text_tower, t_mean, t_scale), Projection.from_tower(image_tower, i_mean, i_scale)
