"""h2o.Session: logits against the library's perplexity path, KV memory, kept positions."""

import math

import numpy as np
import pytest


def log_softmax(logits):
    x = logits.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def test_feed_shapes(model):
    s = model.session()
    ids = model.tokenize("Once upon a time")
    last = s.feed(ids)
    assert last.dtype == np.float32 and last.shape == (512,)
    assert s.n_past == 5
    s.reset()
    assert s.n_past == 0
    all_logits = s.feed(ids, all_logits=True)
    assert all_logits.shape == (5, 512)
    np.testing.assert_array_equal(all_logits[-1], last)
    np.testing.assert_array_equal(s.last_logits, last)
    # A numpy array of ids works as well as a list.
    s.reset()
    np.testing.assert_array_equal(s.feed(np.array(ids, dtype=np.int64)), last)


def test_feed_logits_match_perplexity_nll(h2o, model, story_text):
    ids = model.tokenize(story_text, add_bos=False)[:120]
    # One window: BOS + 120 tokens, every token scored by the C++ perplexity path.
    ppl = h2o.perplexity(model, ids, ctx=len(ids) + 1)
    assert ppl.n_tokens == len(ids) and ppl.n_windows == 1
    assert ppl.nll.shape == (len(ids),)
    s = model.session()
    logits = s.feed([model.bos_id] + ids[:-1], all_logits=True)
    nll = -log_softmax(logits)[np.arange(len(ids)), ids]
    np.testing.assert_allclose(nll, ppl.nll, rtol=0, atol=1e-5)
    assert math.isclose(ppl.mean_nll, float(nll.mean()), abs_tol=1e-6)
    assert math.isclose(ppl.ppl, math.exp(ppl.mean_nll), rel_tol=1e-12)
    # Token by token (decode steps) gives the same logits as the whole prefill, to float rounding.
    s.reset()
    for i, t in enumerate([model.bos_id] + ids[:20]):
        step = s.feed([t])
        np.testing.assert_allclose(step, logits[i], rtol=0, atol=1e-4)


def test_perplexity_of_text(h2o, model, story_text):
    r = h2o.perplexity(model, story_text, ctx=128)
    n = len(model.tokenize(story_text, add_bos=False))
    assert r.n_tokens == n == len(r.nll)
    assert r.n_windows == math.ceil(n / 127)
    # The README's float64 reference on held-out TinyStories: ppl 4.82; same order here.
    assert 3.0 < r.ppl < 8.0
    assert r.kv == {"policy": "full", "budget": 0, "recent": 0, "sinks": 0, "seed": 0, "type": "f32",
                    "positions": "absolute"}
    # Token by token (prefill_chunk=1) every step evicts down to 16 slots.
    bounded = h2o.perplexity(model, story_text, ctx=128, kv_policy="h2o", kv_budget=16, prefill_chunk=1)
    assert bounded.kv["budget"] == 16 and bounded.kv["recent"] == 8
    assert bounded.kv_bytes_peak < r.kv_bytes_peak / 4
    assert bounded.ppl > r.ppl  # 16 of up to 128 positions lose something
    # In one step per window the whole window attends to itself: eviction comes after it.
    whole = h2o.perplexity(model, story_text, ctx=128, kv_policy="h2o", kv_budget=16)
    assert whole.ppl == pytest.approx(r.ppl, rel=1e-6)
    seg = h2o.perplexity(model, story_text, ctx=128, segment=32)
    assert [d["first"] for d in seg.segments] == [0, 32, 64, 96]
    assert sum(d["n"] for d in seg.segments) == n


def test_kv_bytes_under_budget(model, story_text):
    ids = model.tokenize(story_text)[:200]
    full = model.session()
    bounded = model.session(kv_policy="h2o", kv_budget=32, kv_recent=8)
    assert bounded.kv["budget"] == 32 and bounded.kv["recent"] == 8
    trace_full, trace_h2o = [], []
    for t in ids:
        full.feed([t])
        bounded.feed([t])
        trace_full.append(full.kv_bytes)
        trace_h2o.append(bounded.kv_bytes)
    # Once the budget is reached the bounded cache stops growing; the full one keeps growing.
    assert len(set(trace_h2o[32:])) == 1
    assert trace_full[-1] > trace_full[32]
    assert trace_h2o[-1] < trace_full[-1]
    assert bounded.kv_bytes_peak == max(trace_h2o)
    kept = bounded.kept_positions()
    assert len(kept) == model.n_layers
    for layer in kept:
        assert layer.dtype == np.int32 and layer.shape == (model.n_kv_heads, 32)
        for row in layer:
            assert np.all(np.diff(row) > 0) and row[-1] == 199
            # h2o keeps the 8 most recent positions; the rest are heavy hitters from before.
            np.testing.assert_array_equal(row[-8:], np.arange(192, 200))
    for layer in full.kept_positions():
        np.testing.assert_array_equal(layer, np.tile(np.arange(200, dtype=np.int32), (model.n_kv_heads, 1)))


def test_percentage_budget_needs_length(h2o, model):
    with pytest.raises(h2o.Error, match="percentage"):
        model.session(kv_policy="window", kv_budget="20%")
    s = model.session(kv_policy="window", kv_budget="25%", expected_length=100)
    assert s.kv["budget"] == 25


def test_threads_give_same_logits(model, story_text):
    ids = model.tokenize(story_text)[:64]
    one = model.session().feed(ids, all_logits=True)
    four = model.session(threads=4, prefill_chunk=16).feed(ids, all_logits=True)
    np.testing.assert_allclose(four, one, rtol=0, atol=1e-4)


def test_sessions_in_python_threads(model, story_text):
    # feed releases the GIL: sessions in several threads run and give the same logits.
    import concurrent.futures

    ids = model.tokenize(story_text)[:100]
    expect = model.session().feed(ids)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: model.session().feed(ids), range(4)))
    for g in got:
        np.testing.assert_array_equal(g, expect)
