"""Session attention recording: shapes and probability mass."""

import numpy as np
import pytest


def test_accumulated_mass_after_prefill(model, story_text):
    ids = model.tokenize(story_text)[:40]
    s = model.session()
    s.observe_attention(True)
    assert s.observing_attention
    s.feed(ids)
    acc = s.attention()
    assert len(acc) == model.n_layers
    n = len(ids)
    for layer in acc:
        assert layer.dtype == np.float64 and layer.shape == (model.n_heads, n)
        # Every query row's probabilities sum to 1: n rows per head.
        np.testing.assert_allclose(layer.sum(axis=1), n, rtol=1e-5)
        # Causal: key position j is seen by the n - j rows at or after it, at most 1 each.
        assert np.all(layer <= np.arange(n, 0, -1) + 1e-5)
        assert np.all(layer >= 0)
        # Position 0 sees only itself: row 0 gives it all its mass.
        assert np.all(layer[:, 0] >= 1.0 - 1e-6)
    np.testing.assert_array_equal(s.attention_rows(), np.full((model.n_layers, model.n_heads), n))
    last = s.attention_last()
    for layer in last:
        assert layer.dtype == np.float32 and layer.shape == (model.n_heads, n)
        np.testing.assert_allclose(layer.sum(axis=1), 1.0, rtol=1e-5)

    # A decode step adds one row per head and one position.
    s.feed([ids[5]])
    for layer in s.attention():
        assert layer.shape == (model.n_heads, n + 1)
        np.testing.assert_allclose(layer.sum(axis=1), n + 1, rtol=1e-5)


def test_attention_under_budget_sees_only_kept(model, story_text):
    ids = model.tokenize(story_text)[:120]
    s = model.session(kv_policy="h2o", kv_budget=24, prefill_chunk=16)
    s.observe_attention()
    for i in range(0, len(ids), 10):
        s.feed(ids[i:i + 10])
    rows = s.attention_rows()
    np.testing.assert_array_equal(rows, np.full((model.n_layers, model.n_heads), len(ids)))
    kept = s.kept_positions()
    for layer, (acc, last) in enumerate(zip(s.attention(), s.attention_last())):
        assert acc.shape == (model.n_heads, len(ids))
        np.testing.assert_allclose(acc.sum(axis=1), len(ids), rtol=1e-5)
        np.testing.assert_allclose(last.sum(axis=1), 1.0, rtol=1e-5)
        for h in range(model.n_heads):
            # The latest row attended to the slots kept before the step (at most budget + step).
            attended = np.flatnonzero(last[h])
            assert len(attended) <= 24 + 10
            kv_head = h // (model.n_heads // model.n_kv_heads)
            # What survived eviction after the step is a subset of what that row could see.
            assert set(kept[layer][kv_head]) <= set(attended) | set(range(len(ids) - 10, len(ids)))


def test_stop_clear_and_reset(h2o, model):
    s = model.session()
    with pytest.raises(h2o.Error, match="observe_attention"):
        s.attention()
    s.observe_attention(True)
    s.feed([1, 20, 30])
    s.observe_attention(False)
    s.feed([40])
    assert s.attention()[0].shape == (model.n_heads, 3)  # the step after stopping is not recorded
    s.clear_attention()
    assert s.attention()[0].shape == (model.n_heads, 0)
    s.observe_attention(True)
    s.feed([50])
    assert s.attention()[0].shape == (model.n_heads, 5)  # absolute positions: the 5th token
    s.reset()
    assert s.attention_rows().sum() == 0
