"""What deepshelf's SASRec training costs per step and per validation on the comparison's data, measured by
`benchmarks/recbole_compare.py` in the run that writes its subsection: the step with and without each thing that
cuts it (`step_costs`), and a full-ranking validation with today's top-k against the tie rule applied to every row
(`validation_costs`). Thread CPU time throughout, so time the scheduler gives to other jobs is not counted."""

from __future__ import annotations

import time

import numpy as np
import torch

from deepshelf.models.sasrec import SASRec


def _untrained(split, params: dict, precision: str, batch_size: int, **overrides) -> tuple:
    """A SASRec built as the comparison builds it, its training loop caught before the first step: (model, the
    network in training mode, its loss function, its batches)."""
    from unittest import mock

    from deepshelf.models.sasrec import estimator

    caught = {}

    def grab(module, loss_of, batches, settings, device, validate):
        caught.update(net=module, loss_of=loss_of, batches=batches)
        return []

    with mock.patch.object(estimator, "train_loop", grab):
        model = SASRec(**{**params, "precision": precision, "threads": 1, "progress": False,
                          "batch_size": batch_size, "seed": 0, **overrides}).fit(split.train)
    return model, caught["net"].train(), caught["loss_of"], caught["batches"]


def step_costs(split, params: dict, batch_size: int, precision: str, steps: int = 30) -> list[str]:
    """CPU milliseconds per deepshelf training step (forward, loss, backward, AdamW) on this data in `precision`
    (bf16: forward and loss under CPU autocast, as the training loop runs them), with and without what cuts it:
    rows in groups of similar length, the fused AdamW update, the loss's chunked cross-entropy (gradients computed
    chunk by chunk in the forward pass; chunks of ~2 MB of logits, or of ~8 MB) against `F.cross_entropy` over the
    whole logits, and dropout masks from `torch.rand_like` (`layers.Dropout`) against `nn.Dropout`'s `bernoulli_`.
    Thread CPU time, so time the scheduler gives to other jobs is not counted; median over `steps` steps of the
    same batches for every variant, the variants taking turns step by step."""
    from functools import partial
    from unittest import mock

    import torch.nn.functional as F

    from deepshelf.models import layers, losses
    from deepshelf.models.sasrec import estimator

    def plain(hidden, items, targets, weights=None):  # weights are None in this config
        return F.cross_entropy(hidden @ items.T, targets)

    def bernoulli(self, x):  # nn.Dropout's mask
        return F.dropout(x, self.p, self.training)

    clip = params.get("clip", SASRec.Config().clip)
    n_items = split.train.n_items
    chunked, big = "chunked, 2 MB chunks (default)", "chunked, 8 MB chunks"
    losses_by_name = {"F.cross_entropy": plain, chunked: losses.full_softmax_loss,
                      big: partial(losses.full_softmax_loss, chunk=max(8, 2**21 // n_items))}
    rows = ["| length groups | loss | AdamW | dropout mask | CPU ms / step (median) |", "|---:|---|---|---|---:|"]
    # (length groups, loss, fused AdamW, bernoulli_ masks): everything off first, the default last
    variants = [(1, "F.cross_entropy", False, True), (1, chunked, True, False), (4, "F.cross_entropy", True, False),
                (4, big, True, False), (4, chunked, False, False), (4, chunked, True, True), (4, chunked, True, False)]
    runs = []  # per variant: (one training step, its batches)
    for groups, name, fused, bern in variants:
        loss_fn = losses_by_name[name]
        _, net, loss_of, batches = _untrained(split, params, precision, batch_size, length_groups=groups)
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=fused)

        def step(batch, net=net, loss_of=loss_of, optimizer=optimizer, loss_fn=loss_fn, bern=bern):
            with mock.patch.object(estimator, "full_softmax_loss", loss_fn), \
                    mock.patch.object(layers.Dropout, "forward", bernoulli if bern else layers.Dropout.forward):
                start = time.thread_time()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    loss = loss_of(net, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if clip:  # as the training loop does with this recipe
                    torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
                optimizer.step()
                return (time.thread_time() - start) * 1000

        runs.append((step, list(zip(range(steps + 3), batches(1)))))
    # Round robin, one step of each variant in turn, so a change in the machine's load during the measurement
    # falls on every variant alike; the first 3 rounds warm allocator and caches.
    times = [[] for _ in runs]
    for i in range(steps + 3):
        for (step, batches), spent in zip(runs, times):
            ms = step(batches[i][1])
            if i >= 3:
                spent.append(ms)
    for (groups, name, fused, bern), spent in zip(variants, times):
        mask = "bernoulli_ (nn.Dropout)" if bern else "rand_like (default)"
        rows.append(f"| {groups} | {name} | {'fused (default)' if fused else 'for-each'} | {mask} | "
                    f"{np.median(spent):.0f} |")
        print(rows[-1], flush=True)
    return rows


def _tie_rule_everywhere(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """`topk` as it was before it kept the tie rule to the rows that need it: a partition for the k-th score, then
    the lowest-index rule for ties over every row (same answers, `tests/index/test_topk.py` checks the rule)."""
    from deepshelf.index import exact

    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
    part = exact._lowest_index_ties(scores, kth, k)
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)


def validation_costs(split, params: dict, precision: str, rounds: int = 3) -> list[str]:
    """CPU seconds of one validation as the training loop runs it (`evaluation.validation`: full ranking of every
    validation user, seen items excluded, NDCG@10) for an untrained model (the cost does not depend on the
    weights), with `topk` as it is and with the tie rule over every row as before; the two take turns, median of
    `rounds`, and must give the same NDCG@10."""
    from unittest import mock

    from deepshelf.evaluation.evaluate import validation
    from deepshelf.index import exact

    model = _untrained(split, params, precision, params.get("batch_size", 128))[0]
    check = validation(split.valid)
    variants = {"tie rule on every row (before)": _tie_rule_everywhere, "tie rule where ties are (now)": exact.topk}
    times, results = {name: [] for name in variants}, {}
    for _ in range(rounds):
        for name, fn in variants.items():
            with mock.patch.object(exact, "topk", fn):  # the one `topk_allowed` (every recommend) calls
                start = time.thread_time()
                results[name] = check(model)
                times[name].append(time.thread_time() - start)
    if len(set(results.values())) != 1:
        raise SystemExit(f"the two top-k paths disagree on validation NDCG@10: {results}")
    rows = ["| deepshelf validation, top-k | CPU s per validation (median) |", "|---|---:|"]
    rows += [f"| {name} | {np.median(spent):.2f} |" for name, spent in times.items()]
    print("\n".join(rows), flush=True)
    return rows
