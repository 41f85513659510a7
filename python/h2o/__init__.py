"""h2o.cpp from Python: LLM inference with H2O KV-cache eviction.

A thin front end over the C++ library (the compiled module ``h2o._h2o``); see
docs/python.md. Quick start::

    import h2o
    model = h2o.Model("../shared/models/stories260K-f32.gguf")
    s = model.session(kv_policy="h2o", kv_budget=64)
    logits = s.feed(model.tokenize("Once upon a time"))  # numpy float32 [vocab]
    print(h2o.generate(model, "Once upon a time", n_predict=32, temperature=0).text)

Errors from the engine (bad file, unknown policy, token id out of range) raise
``h2o.Error`` (a RuntimeError) with the engine's one-line message.
"""

from ._h2o import (
    Error,
    GenerateResult,
    Model,
    PerplexityResult,
    Session,
    generate,
    kv_policy_names,
    perplexity,
)

__all__ = [
    "Error",
    "GenerateResult",
    "Model",
    "PerplexityResult",
    "Session",
    "generate",
    "kv_policy_names",
    "perplexity",
]
