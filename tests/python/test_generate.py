"""h2o.generate against the CLI and the reference greedy text."""

import subprocess

from conftest import SHARED, STORIES


def test_greedy_matches_reference_and_cli(h2o, model, cli):
    r = h2o.generate(model, "Once upon a time", n_predict=32, temperature=0)
    assert r.prompt_tokens == model.tokenize("Once upon a time")
    assert len(r.tokens) == 32 and r.stop_reason == "length"
    assert r.prompt_text == "Once upon a time"
    # llama2.c's run.c greedy output (shared/models/README.md) starts with the same text.
    reference = (SHARED / "models" / "stories260K.greedy.txt").read_text(encoding="utf-8")
    assert reference.startswith(r.prompt_text + r.text)
    assert r.text.startswith(", there was a little girl named Lily.")
    assert model.detokenize(r.prompt_tokens + r.tokens) == r.prompt_text + r.text
    out = subprocess.run(
        [str(cli), "generate", "-m", str(STORIES), "-p", "Once upon a time", "-n", "32", "--temp", "0", "-t", "1"],
        check=True, capture_output=True, text=True).stdout
    assert out == r.prompt_text + r.text + "\n"


def test_streaming_and_kv_policy(h2o, model):
    pieces = []
    full = h2o.generate(model, "Once upon a time", n_predict=100, temperature=0, on_text=pieces.append)
    assert "".join(pieces) == full.prompt_text + full.text
    assert full.kv == {"policy": "full", "budget": 0, "recent": 0, "sinks": 0, "seed": 0, "type": "f32",
                       "positions": "absolute"}
    assert len(full.kv_bytes_trace) == len(full.tokens) - 1
    h = h2o.generate(model, "Once upon a time", n_predict=100, temperature=0, kv_policy="h2o", kv_budget=32)
    assert h.kv["policy"] == "h2o" and h.kv["budget"] == 32 and h.kv["recent"] == 16
    assert h.kv_bytes_peak < full.kv_bytes_peak
    # Before the budget fills, h2o keeps everything: the first tokens agree with full.
    assert h.tokens[:20] == full.tokens[:20]


def test_sampling_is_seeded(h2o, model):
    a = h2o.generate(model, "The dog", n_predict=40, temperature=0.9, top_k=40, top_p=0.95, seed=7)
    b = h2o.generate(model, "The dog", n_predict=40, temperature=0.9, top_k=40, top_p=0.95, seed=7)
    c = h2o.generate(model, "The dog", n_predict=40, temperature=0.9, top_k=40, top_p=0.95, seed=8)
    assert a.tokens == b.tokens
    assert a.tokens != c.tokens


def test_sampling_matches_cli(h2o, model, cli):
    r = h2o.generate(model, "The dog", n_predict=24, temperature=0.8, top_k=40, top_p=0.95, seed=3,
                     kv_policy="h2o", kv_budget=16)
    out = subprocess.run(
        [str(cli), "generate", "-m", str(STORIES), "-p", "The dog", "-n", "24", "--temp", "0.8", "--top-k", "40",
         "--top-p", "0.95", "-s", "3", "--kv-policy", "h2o", "--kv-budget", "16", "-t", "1"],
        check=True, capture_output=True, text=True).stdout
    assert out == r.prompt_text + r.text + "\n"


def test_on_text_exception_propagates(h2o, model):
    def boom(piece):
        raise ValueError("stop here")

    import pytest

    with pytest.raises(ValueError, match="stop here"):
        h2o.generate(model, "Once", n_predict=5, on_text=boom)
