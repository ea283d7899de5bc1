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
    if chunk is None:  # rows of logits per step: ~8 MB of them on CPU (cache-sized), ~256 MB on GPU
        chunk = max(1, (2**26 if device == "cuda" else 2**21) // item_embeddings.shape[0])
    if weights is None:
        weights = torch.ones_like(targets, dtype=torch.float32)
    return _ChunkedCrossEntropy.apply(hidden, item_embeddings, targets, weights.float(), chunk, dtype)


# Largest softmax (rows x items) the forward pass keeps for the backward pass instead of recomputing it there:
# 256 MB of fp32. Keeping it saves one of the loss's four (rows x items x width) matrix products per step.
KEEP_SOFTMAX_ELEMENTS = 2**26


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Weighted mean cross-entropy. The forward pass keeps each row's log-sum-exp, and the softmax itself while it
    fits in `KEEP_SOFTMAX_ELEMENTS`; otherwise the backward pass recomputes the logits chunk by chunk.

    Work on the (rows x items) matrix is what a step costs, so it is touched as few times as the math allows: the
    kept softmax is left unnormalised (exp(logit - row max)), and everything that is per row (the 1 / sum
    normalisation, the loss weights, the incoming gradient, the one-hot of the target) is applied to the
    (rows x width) factors and results instead: d hidden = c (P e) / s - c e[target],
    d items = P^T (c h / s) - scatter of c h at the targets. `benchmarks/recbole_compare.py`'s step-cost table
    measures the step with this loss against `F.cross_entropy` over the whole logits.
    """

    @staticmethod
    def forward(ctx, hidden, items, targets, weights, chunk: int, dtype: torch.dtype):
        h, e = hidden.detach().to(dtype), items.detach().to(dtype)
        keep = len(targets) * e.shape[0] <= KEEP_SOFTMAX_ELEMENTS
        lse = torch.empty(len(targets), dtype=torch.float32, device=hidden.device)  # (N,)
        inv_sums = torch.ones(len(targets), dtype=torch.float32, device=hidden.device)  # (N,) 1 / sum of kept exps
        exps = []  # (n, n_items) exp(logit - row max) per chunk, when kept
        for s in range(0, len(targets), chunk):
            logits = (h[s : s + chunk] @ e.T).float()  # (n, n_items)
            top = logits.amax(dim=1, keepdim=True)  # (n, 1)
            sums = logits.sub_(top).exp_().sum(dim=1)  # (n,) in place: the logits are not needed again
            lse[s : s + chunk] = top.squeeze(1) + sums.log()
            if keep:
                exps.append(logits)
                inv_sums[s : s + chunk] = sums.reciprocal()
        target_logits = (h.float() * e[targets].float()).sum(-1)  # (N,), same rounding as the chunks
        ctx.save_for_backward(h, e, targets, weights, lse, inv_sums)
        ctx.chunk, ctx.dtypes, ctx.exps = chunk, (hidden.dtype, items.dtype), exps
        return ((lse - target_logits) * weights).sum() / weights.sum().clamp_min(1e-12)

    @staticmethod
    def backward(ctx, grad):
        h, e, targets, weights, lse, inv_sums = ctx.saved_tensors
        exps, ctx.exps = ctx.exps, None  # used up here: a second backward pass recomputes them
        coef = weights * (grad / weights.sum().clamp_min(1e-12))  # (N,) d loss / d row loss
        scale = coef * inv_sums  # (N,) per-row factor of the (unnormalised) softmax
        hf = h.float()
        d_hidden = -coef[:, None] * e[targets].float()  # (N, d): the one-hot's share
        d_items = torch.zeros(e.shape, dtype=torch.float32, device=h.device)  # (n_items, d)
        d_items.index_add_(0, targets, -coef[:, None] * hf)
        for i, s in enumerate(range(0, len(targets), ctx.chunk)):
            rows = slice(s, s + ctx.chunk)
            if exps:
                p = exps[i]  # (n, n_items) exp(logit - row max)
            else:  # normalised here already (inv_sums is 1)
                p = (h[rows] @ e.T).float().sub_(lse[rows, None]).exp_()
            p = p.to(h.dtype)
            d_hidden[rows] += (p @ e).float() * scale[rows, None]
            weighted = (hf[rows] * scale[rows, None]).to(h.dtype)  # (n, d)
            if h.dtype == torch.float32:
                d_items.addmm_(p.T, weighted)
            else:
                d_items += (p.T @ weighted).float()
        return d_hidden.to(ctx.dtypes[0]), d_items.to(ctx.dtypes[1]), None, None, None, None


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
