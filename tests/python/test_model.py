"""h2o.Model: loading, shape, tokenizer round trips."""

import json
import subprocess

import pytest

from conftest import STORIES


def test_shape(model):
    # stories260K (shared/models/README.md): 5 layers, 8 query heads, 4 KV heads, vocab 512, ctx 512.
    assert model.vocab_size == 512
    assert model.context_length == 512
    assert model.n_layers == 5
    assert model.n_heads == 8
    assert model.n_kv_heads == 4
    assert model.head_dim == 8
    assert model.arch == "llama"
    assert model.bos_id == 1
    assert model.eos_id == 2
    assert "llama" in repr(model)


def test_tokenize_bos_and_round_trip(model):
    ids = model.tokenize("Once upon a time")
    # BOS first, then four tokens (the README's reference run: "4 prompt tokens").
    assert ids[0] == 1
    assert len(ids) == 5
    assert model.tokenize("Once upon a time", add_bos=False) == ids[1:]
    assert model.detokenize(ids) == "Once upon a time"
    text = 'Lily said, "I want to play with the big, red ball!"\nHer mom smiled.'
    assert model.detokenize(model.tokenize(text)) == text


def test_tokenize_matches_cli(model, cli):
    text = "The cat sat on the mat. It was happy."
    out = subprocess.run([str(cli), "tokenize", "-m", str(STORIES), "-p", text, "--json"], check=True,
                         capture_output=True, text=True).stdout
    j = json.loads(out)
    assert model.tokenize(text) == j["ids"]
    # piece() is the vocabulary's display text: the CLI's decoded pieces, but with
    # SentencePiece's dummy-prefix space and byte tokens spelt as stored.
    assert [model.piece(i) for i in j["ids"][:3]] == ["<s>", " The", " c"]
    assert model.piece(13) == "<0x0A>" and model.detokenize([13]) == "\n"


def test_detokenize_bad_id_raises(h2o, model):
    with pytest.raises(h2o.Error, match="512"):
        model.detokenize([1, 512])


def test_bad_path_raises(h2o, tmp_path):
    missing = tmp_path / "no-such-model.gguf"
    with pytest.raises(h2o.Error) as e:
        h2o.Model(str(missing))
    assert str(missing) in str(e.value)
    assert "\n" not in str(e.value)
    assert issubclass(h2o.Error, RuntimeError)
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(h2o.Error):
        h2o.Model(str(garbage))
