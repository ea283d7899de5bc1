"""SASRec: a planted sequential pattern is learned; causal masking, padding invariance, batch == single,
save/load, sampled vs full softmax, event types, and bad configs refused with the field named.

Tiny models on tiny data so the file runs in well under a minute on two busy cores.
"""

import numpy as np
import pytest
import torch

from deepshelf.data.interactions import Histories, Interactions
from deepshelf.data.splits import leave_one_out
from deepshelf.errors import DeepshelfError
from deepshelf.evaluation.evaluate import evaluate, validation
from deepshelf.models.base import Recommender
from deepshelf.models.layers import Dropout, TransformerBlock, causal_padding_mask
from deepshelf.models.sasrec import SASRec, SASRecNetwork

N_ITEMS = 30
TINY = dict(dim=16, layers=1, heads=2, max_len=16, dropout=0.0, batch_size=32, lr=1e-2, warmup=5,
            epochs=25, eval_every=5, patience=2, progress=False, threads=1)


def successor_data(users: int = 160, length: int = 12, seed: int = 0) -> Interactions:
    """Every shopper walks the catalogue in order from a random start: item i is always followed by i + 1."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(N_ITEMS, size=users)
    items = (starts[:, None] + np.arange(length)) % N_ITEMS  # (users, length)
    types = rng.integers(0, 3, size=items.shape)  # view / cart / purchase, for the event-type path
    return Interactions.from_ids(np.repeat(np.arange(users), length).astype(str), items.ravel().astype(str),
                                 type=types.ravel())


@pytest.fixture(scope="module")
def split():
    return leave_one_out(successor_data())


@pytest.fixture(scope="module")
def trained(split):
    return SASRec(**TINY).fit(split.train, validation=validation(split.valid))


def next_item_of(split, model, histories):
    """The planted answer in index space: the successor of each history's last item."""
    ids = model.item_map.ids
    last = np.array([int(ids[h[-1]]) for h in (histories[b] for b in range(len(histories)))])
    return model.item_map.lookup(((last + 1) % N_ITEMS).astype(str))


def test_planted_successor_learned(trained, split):
    result = evaluate(trained, split.test, ks=(1, 10))
    assert result.metrics["hr@1"] >= 0.95, result.metrics
    assert trained.training_log and all("seconds" in e for e in trained.training_log)
    assert any("valid_ndcg@10" in e for e in trained.training_log)


def test_anonymous_history_scored_without_a_user_id(trained):
    session = Histories.from_lists([[trained.item_map.lookup(np.array(["3"]))[0],
                                     trained.item_map.lookup(np.array(["4"]))[0]]])
    idx, _ = trained.recommend(session, k=1)
    assert trained.item_map.ids[idx[0, 0]] == "5"


@pytest.mark.parametrize("norm", ["pre", "post", "query"])
def test_causal_masking(norm):
    """Changing the item at position t never changes the output at positions before t."""
    torch.manual_seed(0)
    net = SASRecNetwork(N_ITEMS, 20, 16, 2, 2, 0.0, norm=norm).eval()
    items = torch.randint(1, N_ITEMS + 1, (3, 20))
    items[0, :5] = 0  # a padded row too
    changed = items.clone()
    changed[:, 12] = (changed[:, 12] % N_ITEMS) + 1
    with torch.no_grad():
        a, b = net(items), net(changed)
    torch.testing.assert_close(a[:, :12], b[:, :12], rtol=0, atol=0)
    assert not torch.allclose(a[:, 12:], b[:, 12:])


@pytest.mark.parametrize("norm", ["pre", "post", "query"])
def test_newest_only_equals_the_newest_row_of_the_full_pass(norm):
    """Scoring runs the last block for the newest position alone; it must give that row of the full pass."""
    torch.manual_seed(0)
    net = SASRecNetwork(N_ITEMS, 20, 16, 3, 2, 0.0, norm=norm).eval()
    items = torch.randint(1, N_ITEMS + 1, (4, 20))
    items[0, :5] = 0  # left-padded rows, as scoring builds them
    items[1, :19] = 0
    with torch.no_grad():
        full, newest = net(items), net(items, newest_only=True)
    assert newest.shape == (4, 1, 16)
    torch.testing.assert_close(newest[:, 0], full[:, -1], rtol=1e-5, atol=1e-5)


def test_positions_from_the_oldest_item_keep_earlier_outputs_when_events_are_added():
    """Counting positions from the oldest item, an output depends only on the items up to it, so appending
    events leaves every earlier output as it was; counted back from the newest, appending shifts them all."""
    torch.manual_seed(0)
    items = torch.randint(1, N_ITEMS + 1, (3, 20))
    items[0, :5] = 0
    for from_oldest in (True, False):
        net = SASRecNetwork(N_ITEMS, 20, 16, 2, 2, 0.0, norm="post", from_oldest=from_oldest).eval()
        with torch.no_grad():
            whole, prefix = net(items), net(items[:, :12])
        same = torch.allclose(whole[:, :12], prefix, rtol=1e-5, atol=1e-5)
        assert same == from_oldest


def test_model_saved_before_positions_were_a_choice_loads_counting_from_the_newest(split, tmp_path):
    """A model.json from before `positions`, `scale_items` and `attn_dropout` existed loads as it was trained:
    positions from the newest item, unscaled inputs, no attention dropout, and scores exactly as saved."""
    import json

    model = SASRec(**{**TINY, "epochs": 1}, positions="newest").fit(split.train)
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    for key in ("positions", "scale_items", "attn_dropout"):
        del meta["config"][key]
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.config.positions == "newest" and not loaded.network.from_oldest
    assert loaded.network.item_scale == 1.0 and loaded.network.blocks[0].attn.dropout == 0.0
    batch = split.test.inputs.select(np.arange(20))
    np.testing.assert_array_equal(loaded.score(batch), model.score(batch))


def test_padding_does_not_change_scores(trained):
    """A short history's output is the same alone and left-padded to any length (a batch of long histories pads
    it; the contract test checks batch == single through score())."""
    net = trained.network
    short = torch.tensor([[3, 7, 9]])
    with torch.no_grad():
        alone = net(short)[:, -1]
        padded = net(torch.cat([torch.zeros(1, 10, dtype=torch.long), short], 1))[:, -1]
    torch.testing.assert_close(alone, padded, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm, scale_items, init_std", [("pre", False, None), ("query", True, 0.02)])
def test_other_norms_learn_the_planted_successor_and_ignore_padding(split, norm, scale_items, init_std):
    model = SASRec(**TINY, norm=norm, scale_items=scale_items, init_std=init_std).fit(
        split.train, validation=validation(split.valid))
    assert model.network.blocks[0].norm == norm and model.network.item_scale == (4.0 if scale_items else 1.0)
    assert evaluate(model, split.test, ks=(1,)).metrics["hr@1"] >= 0.95
    short = torch.tensor([[3, 7, 9]])
    with torch.no_grad():
        alone = model.network(short)[:, -1]
        padded = model.network(torch.cat([torch.zeros(1, 10, dtype=torch.long), short], 1))[:, -1]
    torch.testing.assert_close(alone, padded, rtol=1e-5, atol=1e-5)


def test_all_windows_learn_from_events_older_than_max_len():
    """Each shopper's old events walk the catalogue (i -> i + 1); the newest max_len + 1 are noise from other
    items. Only training on every window sees the walks, so only it can predict a successor."""
    rng = np.random.default_rng(0)
    users, walk, noise, max_len = 120, 12, 9, 8
    starts = rng.integers(N_ITEMS, size=users)
    walks = (starts[:, None] + np.arange(walk)) % N_ITEMS
    tails = N_ITEMS + rng.integers(N_ITEMS, size=(users, noise))  # items N_ITEMS .. 2 N_ITEMS - 1
    items = np.hstack([walks, tails])
    train = Interactions.from_ids(np.repeat(np.arange(users), walk + noise).astype(str), items.ravel().astype(str))
    params = {**TINY, "max_len": max_len, "epochs": 30}
    probe = Histories.from_lists([train.item_map.lookup(np.array([str(i), str(i + 1)])) for i in range(N_ITEMS - 1)])
    expected = train.item_map.lookup(np.array([str((i + 2) % N_ITEMS) for i in range(N_ITEMS - 1)]))
    hits = {}
    for windows in ("last", "all"):
        model = SASRec(**params, windows=windows).fit(train)
        top, _ = model.recommend(probe, k=1)
        hits[windows] = float((top[:, 0] == expected).mean())
    assert hits["all"] >= 0.9 and hits["last"] <= 0.2, hits


def test_history_longer_than_max_len_uses_the_newest_items(trained):
    long = Histories.from_lists([list(range(25))])
    tail = Histories.from_lists([list(range(25))[-TINY["max_len"]:]])
    np.testing.assert_allclose(trained.score(long), trained.score(tail), rtol=1e-6)


def test_sampled_softmax_agrees_with_full(trained, split):
    sampled = SASRec(**{**TINY, "loss": "sampled", "n_negatives": 16}).fit(split.train,
                                                                        validation=validation(split.valid))
    batch = split.test.inputs
    top_full = trained.recommend(batch, k=1)[0][:, 0]
    top_sampled = sampled.recommend(batch, k=1)[0][:, 0]
    assert (top_full == top_sampled).mean() >= 0.9
    assert evaluate(sampled, split.test, ks=(1,)).metrics["hr@1"] >= 0.9


def test_type_weights_weigh_each_target_in_the_loss(split, monkeypatch):
    """The training loss is the mean cross-entropy over the targets weighted by their event type's weight,
    computed by hand from the same network and batch (unit-variance init: targets differ in loss); with the
    weights it differs from the unweighted loss."""
    import torch.nn.functional as F

    import deepshelf.models.sasrec.estimator as estimator
    from deepshelf.data.schema import EVENT_TYPE_NAMES

    caught = {}

    def first_batch_only(module, loss_of, batches, settings, device, validate):
        caught["loss_of"], caught["batch"], caught["net"] = loss_of, next(iter(batches(1))), module
        return []

    monkeypatch.setattr(estimator, "train_loop", first_batch_only)
    weights = {"purchase": 4.0, "view": 0.5}
    losses = {}
    for name, type_weights in (("plain", None), ("weighted", weights)):
        SASRec(**{**TINY, "use_event_types": True, "type_weights": type_weights, "init_std": None}).fit(split.train)
        seq, types = caught["batch"]
        with torch.no_grad():
            losses[name] = float(caught["loss_of"](caught["net"], caught["batch"]))
            inputs, targets = seq[:, :-1], seq[:, 1:]
            keep = inputs > 0
            hidden = caught["net"](inputs, types[:, :-1])[keep]  # (N, d)
            ce = F.cross_entropy(hidden @ caught["net"].output_embeddings.T, targets[keep] - 1, reduction="none")
        target_types = types[:, 1:][keep] - 1  # stored codes (padded types are code + 1)
        w = torch.tensor([(type_weights or {}).get(EVENT_TYPE_NAMES[t], 1.0) for t in target_types.tolist()])
        assert losses[name] == pytest.approx(float((ce * w).sum() / w.sum()), rel=1e-5)
        assert len(set(w.tolist())) == (3 if type_weights else 1)  # the batch has targets of every type
    assert abs(losses["weighted"] - losses["plain"]) > 1e-3 * losses["plain"], losses  # far beyond rounding


def test_same_seed_same_weights(split):
    a = SASRec(**{**TINY, "epochs": 2, "dropout": 0.3}).fit(split.train)
    b = SASRec(**{**TINY, "epochs": 2, "dropout": 0.3}).fit(split.train)
    for (name, x), y in zip(a.network.state_dict().items(), b.network.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("params, field", [
    ({"max_len": -5}, "max_len"),
    ({"dim": 64, "heads": 3}, "heads"),
    ({"loss": "bpr"}, "loss"),
    ({"dropout": 1.5}, "dropout"),
    ({"epochs": 0}, "epochs"),
    ({"type_weights": {"sneeze": 1.0}}, "type_weights"),
    ({"layrs": 2}, "layrs"),
])
def test_bad_config_refused_naming_the_field(params, field):
    with pytest.raises(DeepshelfError, match=field):
        SASRec(**params)


def test_bad_config_refused_from_the_command_line_settings():
    from deepshelf.runs.config import build_train_config

    with pytest.raises(DeepshelfError, match="heads"):
        build_train_config("ml-1m", "sasrec", None, ["dim=64", "heads=5"])
    cfg = build_train_config("ml-1m", "sasrec", None, ["max_len=50", "loss=sampled", "lr=0.002"])
    assert cfg.params == {"max_len": 50, "loss": "sampled", "lr": 0.002}


@pytest.mark.parametrize("upstream", [1.0, 2.5])
@pytest.mark.parametrize("chunk", [7, 1000])
def test_chunked_full_softmax_matches_cross_entropy(chunk, upstream):
    """The chunked loss equals plain weighted cross-entropy, value and gradients (computed in its forward pass,
    scaled by the incoming gradient in the backward one), whatever the chunk size."""
    import torch.nn.functional as F

    from deepshelf.models.losses import full_softmax_loss

    g = torch.Generator().manual_seed(0)
    h = torch.randn(50, 8, generator=g, requires_grad=True)
    items = torch.randn(30, 8, generator=g, requires_grad=True)
    y = torch.randint(30, (50,), generator=g)
    w = torch.rand(50, generator=g)
    loss = full_softmax_loss(h, items, y, w, chunk=chunk)
    grads = torch.autograd.grad(loss * upstream, (h, items))
    ref = (F.cross_entropy(h @ items.T, y, reduction="none") * w).sum() / w.sum()
    ref_grads = torch.autograd.grad(ref * upstream, (h, items))
    torch.testing.assert_close(loss, ref)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)
    # one input needing a gradient, and none (no_grad: the value alone)
    only_items = torch.autograd.grad(full_softmax_loss(h.detach(), items, y, w, chunk=chunk), items)[0]
    torch.testing.assert_close(only_items, ref_grads[1] / upstream)
    with torch.no_grad():
        torch.testing.assert_close(full_softmax_loss(h, items, y, w, chunk=chunk), ref.detach())


def test_bf16_full_softmax_close_to_fp32():
    """Under bf16 autocast the products run in bf16; loss and gradients stay within bf16 rounding of fp32's."""
    from deepshelf.models.losses import full_softmax_loss

    g = torch.Generator().manual_seed(1)
    h = torch.randn(64, 16, generator=g, requires_grad=True)
    items = torch.randn(40, 16, generator=g, requires_grad=True)
    y = torch.randint(40, (64,), generator=g)
    exact = full_softmax_loss(h, items, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = full_softmax_loss(h, items, y)
    assert low.dtype == torch.float32 and abs(low.item() - exact.item()) < 0.05 * exact.item()
    g_exact, g_low = torch.autograd.grad(exact, h)[0], torch.autograd.grad(low, h)[0]
    assert torch.nn.functional.cosine_similarity(g_exact.flatten(), g_low.flatten(), dim=0) > 0.99


def test_training_stops_once_validation_reaches_the_target(split):
    """stop_at_ndcg ends training at the first validation at or above it (time-to-quality benchmarks)."""
    params = {**TINY, "epochs": 6, "eval_every": 1, "patience": 10}
    full = SASRec(**params).fit(split.train, validation=validation(split.valid))
    first = full.training_log[0]["valid_ndcg@10"]
    stopped = SASRec(**params, stop_at_ndcg=first).fit(split.train, validation=validation(split.valid))
    assert len(full.training_log) == 6 and len(stopped.training_log) == 1
    assert "elapsed" in stopped.training_log[0]


def test_init_std_sets_the_embedding_scale():
    default = SASRecNetwork(500, 20, 64, 1, 1, 0.0)
    small = SASRecNetwork(500, 20, 64, 1, 1, 0.0, init_std=0.02)
    assert abs(default.item_embeddings.weight[1:].std().item() - 64**-0.5) < 0.01
    assert abs(small.item_embeddings.weight[1:].std().item() - 0.02) < 0.002
    assert abs(small.position_embeddings.weight.std().item() - 0.02) < 0.004
    assert not small.item_embeddings.weight[0].any()  # padding row stays zero
    with pytest.raises(ValueError, match="init_std"):
        SASRec(init_std=-1.0)


def test_query_norm_block_matches_its_formula():
    """norm="query": q = LN1(x); h = LN2(q + attn(queries q, keys and values x)); out = h + FFN(h)."""
    torch.manual_seed(0)
    block = TransformerBlock(8, 2, 0.0, norm="query").eval()
    x = torch.randn(2, 5, 8)
    keep = torch.ones(2, 5, dtype=torch.bool)
    keep[1, :2] = False
    mask = causal_padding_mask(keep)
    q_in = block.norm1(x)
    w, b = block.attn.qkv.weight, block.attn.qkv.bias
    q, k, v = q_in @ w[:8].T + b[:8], x @ w[8:16].T + b[8:16], x @ w[16:].T + b[16:]
    heads = []
    for h in range(2):  # each head by hand: softmax(q k^T / sqrt(4)) v over the allowed keys
        cols = slice(4 * h, 4 * h + 4)
        logits = q[..., cols] @ k[..., cols].transpose(1, 2) / 2.0
        logits = logits.masked_fill(~mask[:, 0], float("-inf"))
        heads.append(logits.softmax(-1) @ v[..., cols])
    h = block.norm2(q_in + block.attn.proj(torch.cat(heads, -1)))
    with torch.no_grad():
        torch.testing.assert_close(block(x, mask), h + block.ffn(h), rtol=1e-5, atol=1e-5)


def test_scale_items_multiplies_input_item_vectors_only():
    """scale_items=True reads item vectors times sqrt(dim); the same net with a table pre-multiplied by
    sqrt(dim) and no scaling computes the same outputs."""
    torch.manual_seed(0)
    scaled = SASRecNetwork(N_ITEMS, 20, 16, 2, 2, 0.0, norm="query", scale_items=True).eval()
    plain = SASRecNetwork(N_ITEMS, 20, 16, 2, 2, 0.0, norm="query").eval()
    plain.load_state_dict(scaled.state_dict())
    with torch.no_grad():
        plain.item_embeddings.weight.mul_(4.0)
        items = torch.randint(1, N_ITEMS + 1, (3, 20))
        torch.testing.assert_close(scaled(items), plain(items), rtol=1e-5, atol=1e-5)
        plain.load_state_dict(scaled.state_dict())  # same table, unscaled: different outputs
        assert not torch.allclose(scaled(items), plain(items), rtol=1e-3, atol=1e-3)
    # the output side scores against the table as it is
    assert torch.equal(scaled.output_embeddings, scaled.item_embeddings.weight[1:])


def test_attention_dropout_acts_in_training_only():
    torch.manual_seed(0)
    block = TransformerBlock(8, 2, 0.0, attn_dropout=0.5)
    plain = TransformerBlock(8, 2, 0.0)
    plain.load_state_dict(block.state_dict())
    x, mask = torch.randn(2, 6, 8), causal_padding_mask(torch.ones(2, 6, dtype=torch.bool))
    assert not torch.allclose(block.train()(x, mask), block(x, mask))  # a fresh mask per call
    with torch.no_grad():
        torch.testing.assert_close(block.eval()(x, mask), plain.eval()(x, mask), rtol=0, atol=0)
    model = SASRec(**{**TINY, "epochs": 1}, attn_dropout=0.1)
    assert all(b.attn.dropout == 0.1 for b in model._build(N_ITEMS).blocks)


@pytest.mark.parametrize("batching", ["by_length", "shuffled"])
def test_batching_mixes_lengths_only_when_shuffled(monkeypatch, batching):
    """by_length: a batch holds sequences of about one length; shuffled: of any length, as drawn."""
    import deepshelf.models.sasrec.estimator as sasrec_module

    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 40, size=600)
    users = np.repeat(np.arange(600), lengths).astype(str)
    items = np.concatenate([rng.integers(N_ITEMS, size=n) for n in lengths]).astype(str)
    spreads = []

    def first_epoch_only(module, loss_of, batches, settings, device, validate):
        for seq, _ in batches(1):
            spreads.append(float((seq[:, :-1] > 0).sum(1).float().std()))
        return []

    monkeypatch.setattr(sasrec_module, "train_loop", first_epoch_only)
    SASRec(**{**TINY, "max_len": 40, "batch_size": 16}, batching=batching).fit(Interactions.from_ids(users, items))
    assert len(spreads) == 38  # every sequence, once, in batches of 16
    assert (np.mean(spreads) < 1.0) == (batching == "by_length"), np.mean(spreads)


def test_length_groups_cut_padding_and_keep_the_loss(split, monkeypatch):
    """A batch's rows in groups of similar length: every row once, each group padded only to its own longest row,
    fewer positions computed than in one padded block, and the same training loss (dropout 0)."""
    import deepshelf.models.sasrec.estimator as estimator
    from deepshelf.models.sasrec.batching import length_groups

    rng = np.random.default_rng(0)
    lengths = np.r_[15, rng.integers(2, 5, size=40)]  # one long history among short ones, as in a shuffled batch
    seq = torch.zeros(len(lengths), 16, dtype=torch.long)
    for r, n in enumerate(lengths):
        seq[r, 16 - n :] = torch.from_numpy(rng.integers(1, N_ITEMS + 1, size=n))
    parts = length_groups(seq, None, 4)
    real = lambda rows: sorted(tuple(r[r > 0].tolist()) for r in rows)  # noqa: E731
    assert real(r for p, _ in parts for r in p) == real(seq)  # every row once, its items intact
    assert all(((p[:, :-1] > 0).sum(1).max() == p.shape[1] - 1) for p, _ in parts)  # no all-padding column
    assert sum(p.numel() for p, _ in parts) < seq.numel() / 2

    caught = {}

    def first_batch_only(module, loss_of, batches, settings, device, validate):
        caught["loss_of"], caught["batch"], caught["net"] = loss_of, next(iter(batches(1))), module
        return []

    monkeypatch.setattr(estimator, "train_loop", first_batch_only)
    losses = []
    for groups in (1, 4):
        SASRec(**{**TINY, "length_groups": groups, "batching": "shuffled"}).fit(split.train)
        if groups == 1:
            net, batch = caught["net"], caught["batch"]
        with torch.no_grad():
            caught["net"].load_state_dict(net.state_dict())
            losses.append(float(caught["loss_of"](caught["net"], batch)))
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5])
def test_dropout_is_nn_dropouts_math(p):
    """Training: each element zeroed with probability p, the rest (and their gradients) scaled by 1 / (1 - p);
    evaluation: identity."""
    drop = Dropout(p)
    x = (torch.rand(200, 50, 64) + 1.0).requires_grad_()  # no element is 0 before dropout
    torch.manual_seed(0)
    y = drop(x)
    y.sum().backward()
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - p) < 0.01
    torch.testing.assert_close(y[kept], x.detach()[kept] / (1 - p))
    torch.testing.assert_close(x.grad, kept.float() / (1 - p))
    torch.manual_seed(0)
    torch.testing.assert_close(drop(x), y)  # the torch seed decides the mask
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError, match="between 0 and 1"):
        Dropout(1.5)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_batches_say_their_count_before_an_epoch(split, world):
    """len(TrainingBatches) is the number of batches an epoch yields, so the training bar moves through the
    first epoch too (before, it stayed empty until that epoch ended)."""
    from deepshelf.models.sasrec.batching import TrainingBatches
    from deepshelf.models.sasrec.config import SASRecConfig

    for batch_size in (7, 32, 1000):
        config = SASRecConfig(**{**TINY, "batch_size": batch_size})
        batches = TrainingBatches(split.train, config, torch.device("cpu"), rank=0, world=world)
        assert len(batches) == sum(1 for _ in batches(1)) == sum(1 for _ in batches(2))


def test_first_occurrences_learn_past_repeated_items():
    """Each shopper walks the catalogue (i -> i + 1) but buys a staple (item N_ITEMS) again after every step. With
    every event kept, the staple follows every item; with repeats = "first" the staple appears once, so the model
    learns the walk, and a history is scored without its repeats too."""
    rng = np.random.default_rng(0)
    users, walk = 160, 10
    starts = rng.integers(N_ITEMS, size=users)
    walks = (starts[:, None] + np.arange(walk)) % N_ITEMS
    items = np.stack([walks, np.full_like(walks, N_ITEMS)], axis=2).reshape(users, -1)  # i, staple, i + 1, ...
    train = Interactions.from_ids(np.repeat(np.arange(users), 2 * walk).astype(str), items.ravel().astype(str))
    lookup = train.item_map.lookup
    probe = Histories.from_lists([lookup(np.array([str(i), str(N_ITEMS), str(i + 1), str(N_ITEMS)]))
                                  for i in range(N_ITEMS - 1)])
    expected = lookup(np.array([str((i + 2) % N_ITEMS) for i in range(N_ITEMS - 1)]))
    staple = lookup(np.array([str(N_ITEMS)]))[0]
    hits = {}
    for repeats in ("keep", "first"):
        model = SASRec(**{**TINY, "epochs": 30}, repeats=repeats).fit(train)
        scores = model.score(probe)
        scores[:, staple] = -np.inf  # bought already: the discovery list would exclude it
        hits[repeats] = float((scores.argmax(axis=1) == expected).mean())
    assert hits["first"] >= 0.9 and hits["first"] > hits["keep"], hits
