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
                      weights: torch.Tensor | None = None, chunk: int | None = None) -> torch.Tensor:
    """Cross-entropy of each target (N,) against all items. hidden (N, d), item_embeddings (n_items, d).

    Computed in row chunks that never materialise the (N, n_items) logits in one piece: at ml-1m size that matrix
    is 350 MB per batch, and reading and writing it (log-softmax, its backward, zero-filled gradients) cost
    more than the matrix products themselves. Under bf16 autocast the products run in bf16 (AMX on recent
    Xeons, tensor cores on GPU) while the softmax and the gradient sums stay fp32.
    """
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
    if chunk is None:  # rows of logits at a time: ~2 MB of them on CPU (cache-sized), ~256 MB on GPU
        chunk = max(8, (2**26 if device == "cuda" else 2**19) // item_embeddings.shape[0])
    if weights is None:
        weights = torch.ones_like(targets, dtype=torch.float32)
    grads = torch.is_grad_enabled() and (hidden.requires_grad or item_embeddings.requires_grad)
    return _ChunkedCrossEntropy.apply(hidden, item_embeddings, targets, weights.float(), chunk, dtype, grads)


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Weighted mean cross-entropy whose gradients are computed in the forward pass.

    The loss is a scalar, so its gradients are those for an incoming gradient of 1, times the incoming one. The
    forward pass computes them chunk by chunk while the chunk's softmax is still in cache, and the backward pass
    only scales them: the (rows x items) matrix is never kept whole nor read back from memory, and each chunk is
    small enough to stay in the core's cache between the three products that use it (logits, d hidden, d items).
    Work on that matrix is what a step costs, so it is touched as few times as the math allows: the softmax
    stays unnormalised (exp(logit - row max)), and everything that is per row (the 1 / sum normalisation, the
    loss weights, the one-hot of the target) is applied to the (rows x width) factors and results instead:
    d hidden = c (P e) / s - c e[target], d items = P^T (c h / s) - scatter of c h at the targets.
    `benchmarks/recbole_compare.py`'s step-cost table measures the step with this loss against `F.cross_entropy`
    over the whole logits, and with chunks of another size.
    """

    @staticmethod
    def forward(ctx, hidden, items, targets, weights, chunk: int, dtype: torch.dtype, grads: bool):
        h, e = hidden.detach().to(dtype), items.detach().to(dtype)
        hf = h.float()
        coef = weights / weights.sum().clamp_min(1e-12)  # (N,) d loss / d row loss
        lse = torch.empty(len(targets), dtype=torch.float32, device=hidden.device)  # (N,)
        if grads:
            d_hidden = -coef[:, None] * e[targets].float()  # (N, d): the one-hot's share
            d_items = torch.zeros(e.shape, dtype=torch.float32, device=h.device)  # (n_items, d)
            d_items.index_add_(0, targets, -coef[:, None] * hf)
        for s in range(0, len(targets), chunk):
            rows = slice(s, s + chunk)
            p = (h[rows] @ e.T).float()  # (n, n_items) logits
            top = p.amax(dim=1, keepdim=True)  # (n, 1)
            sums = p.sub_(top).exp_().sum(dim=1)  # (n,) in place: p is exp(logit - row max) from here on
            lse[rows] = top.squeeze(1) + sums.log()
            if grads:
                scale = coef[rows] / sums  # (n,) per-row factor of the unnormalised softmax
                p = p.to(dtype)
                d_hidden[rows] += (p @ e).float() * scale[:, None]
                weighted = (hf[rows] * scale[:, None]).to(dtype)  # (n, d)
                if dtype == torch.float32:
                    d_items.addmm_(p.T, weighted)
                else:
                    d_items += (p.T @ weighted).float()
        target_logits = (hf * e[targets].float()).sum(-1)  # (N,), same rounding as the chunks
        if grads:
            ctx.save_for_backward(d_hidden, d_items)
        ctx.dtypes = (hidden.dtype, items.dtype)
        return ((lse - target_logits) * coef).sum()

    @staticmethod
    def backward(ctx, grad):  # only reached when `grads` was true: otherwise autograd recorded no graph
        d_hidden, d_items = ctx.saved_tensors
        return (d_hidden * grad).to(ctx.dtypes[0]), (d_items * grad).to(ctx.dtypes[1]), None, None, None, None, None


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
