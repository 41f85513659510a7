"""Bad arguments raise h2o.Error with the engine's one-line message, never crash."""

import pytest


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kv_policy": "bogus"}, "unknown policy 'bogus'"),
        ({"kv_policy": "h2o"}, "needs a budget"),
        ({"kv_policy": "h2o", "kv_budget": -3}, "kv_budget: must be at least 1"),
        ({"kv_policy": "h2o", "kv_budget": 0}, "kv_budget: must be at least 1"),
        ({"kv_policy": "h2o", "kv_budget": "150%"}, "percentage must be in"),
        ({"kv_policy": "h2o", "kv_budget": "lots"}, "'lots' is not a number"),
        ({"kv_policy": "h2o", "kv_budget": 1.5}, "kv_budget: expected a token count"),
        ({"kv_policy": "h2o", "kv_budget": True}, "got a bool"),
        ({"kv_policy": "h2o", "kv_budget": 8, "kv_recent": 9}, "exceed the budget"),
        ({"kv_budget": 64}, "not used by policy full"),
        ({"kv_policy": "sink", "kv_budget": 4, "kv_sinks": 4}, "leave no room"),
        ({"kv_type": "f8"}, "kv_type: unknown KV storage type 'f8'"),
        ({"kv_positions": "relative"}, "kv_positions: unknown position mode 'relative'"),
        ({"prefill_chunk": -1}, "must be at least 1"),
        ({"threads": 0}, "threads: must be in"),
        ({"expected_length": -5}, "expected_length"),
    ],
)
def test_bad_session_settings(h2o, model, kwargs, message):
    with pytest.raises(h2o.Error, match=message) as e:
        model.session(**kwargs)
    assert "\n" not in str(e.value)


def test_same_checks_in_generate_and_perplexity(h2o, model):
    with pytest.raises(h2o.Error, match="unknown policy 'lru'"):
        h2o.generate(model, "Hi", kv_policy="lru", kv_budget=4)
    with pytest.raises(h2o.Error, match="unknown policy 'lru'"):
        h2o.perplexity(model, "Hi there", kv_policy="lru", kv_budget=4)
    with pytest.raises(TypeError):
        model.session(kv_polcy="h2o")  # a misspelt keyword is Python's TypeError


def test_token_out_of_vocabulary(h2o, model):
    s = model.session()
    with pytest.raises(h2o.Error, match="token id 512 is outside the vocabulary"):
        s.feed([1, 512])
    with pytest.raises(h2o.Error, match="token id -1 is outside the vocabulary"):
        model.session().feed([-1])
    with pytest.raises(h2o.Error, match="empty token list"):
        model.session().feed([])
    # The last token of a perplexity window is only a target: checked too.
    with pytest.raises(h2o.Error, match="token id 600 is outside the vocabulary"):
        h2o.perplexity(model, [20, 30, 600])
    with pytest.raises(h2o.Error, match="str or a sequence of token ids"):
        h2o.perplexity(model, 3.5)


def test_context_and_argument_limits(h2o, model):
    s = model.session()
    with pytest.raises(h2o.Error, match="context length 512"):
        s.feed([1] * 513)
    with pytest.raises(h2o.Error, match="ctx"):
        h2o.perplexity(model, "Once upon a time", ctx=1)
    with pytest.raises(h2o.Error):
        h2o.generate(model, "Once", n_predict=-1)
    with pytest.raises(h2o.Error, match="temperature|temp"):
        h2o.generate(model, "Once", temperature=-1.0)
    # A bounded cache streams past the context.
    b = model.session(kv_policy="window", kv_budget=16, prefill_chunk=64)
    b.feed([1] + [20] * 600)
    assert b.n_past == 601
