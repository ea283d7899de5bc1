"""Next-item losses over output vectors `hidden` (N, d) and item embeddings (n_items, d).

`full_softmax_loss` is exact cross-entropy over the whole catalogue (the accurate default, Klenitskiy & Vasilev
2023). `sampled_softmax_loss` scores only in-batch and uniform negatives with the logQ correction of
Yi et al. 2019 ("Sampling-bias-corrected neural modeling"), for catalogues too large for a full softmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _weighted_mean(losses: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return losses.mean()
    return (losses * weights).sum() / weights.sum().clamp_min(1e-12)


def full_softmax_loss(hidden: torch.Tensor, item_embeddings: torch.Tensor, targets: torch.Tensor,
                      weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of each target (N,) against all items. hidden (N, d), item_embeddings (n_items, d)."""
    logits = hidden @ item_embeddings.T  # (N, n_items)
    return _weighted_mean(F.cross_entropy(logits.float(), targets, reduction="none"), weights)


def sampled_softmax_loss(hidden: torch.Tensor, item_embeddings: torch.Tensor, targets: torch.Tensor,
                         log_popularity: torch.Tensor, n_negatives: int, generator: torch.Generator | None = None,
                         weights: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the target plus `n_negatives` in-batch targets and `n_negatives` uniform items.

    In-batch negatives are drawn in proportion to popularity, so without correction popular items are
    over-penalised; subtracting log(expected count) of each negative (logQ) makes the sampled softmax an
    unbiased-in-the-limit estimate of the full one. A negative that equals the row's target is masked out.
    log_popularity: (n_items,) log of each item's share of training targets.
    """
    N, n_items = targets.shape[0], item_embeddings.shape[0]
    device = hidden.device
    in_batch = targets[torch.randint(N, (n_negatives,), generator=generator, device=device)]  # (K,)
    uniform = torch.randint(n_items, (n_negatives,), generator=generator, device=device)  # (K,)
    negatives = torch.cat([in_batch, uniform])  # (2K,)
    # expected number of times each negative is drawn: K * q(item) for each of the two samplers
    log_q = torch.cat([log_popularity[in_batch] + torch.log(torch.tensor(float(n_negatives), device=device)),
                       torch.full((n_negatives,), float(n_negatives) / n_items, device=device).log()])  # (2K,)
    pos = (hidden * item_embeddings[targets]).sum(-1, keepdim=True)  # (N, 1)
    neg = hidden @ item_embeddings[negatives].T - log_q  # (N, 2K)
    neg = neg.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([pos, neg], dim=1).float()  # (N, 1 + 2K)
    zeros = torch.zeros(N, dtype=torch.long, device=device)
    return _weighted_mean(F.cross_entropy(logits, zeros, reduction="none"), weights)
