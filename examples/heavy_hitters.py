# Heavy hitters from Python: which tokens collect attention, and does H2O keep them?
#
# Notebook-style (cells marked `# %%`; VS Code / Jupytext run them one by one) or as a
# script:
#
#     PYTHONPATH=build/python python3 examples/heavy_hitters.py [OUT.png]   # from a build
#     .venv/bin/python3 examples/heavy_hitters.py [OUT.png]                 # after pip install
#
# It feeds held-out Pride and Prejudice to books4M (trained on other Austen novels) with a
# full cache, records the attention every key position received (H2O's accumulated
# attention score, the paper's Figure 2), and compares the heavy hitters found that way
# with the positions an H2O cache of 64 slots kept while reading the same text.

# %%
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import h2o  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
OUT = sys.argv[1] if len(sys.argv) > 1 else "heavy_hitters.png"
N_TOKENS = 400  # tokens of text (BOS first)
BUDGET = 64     # H2O slots per (layer, KV head): 32 heavy hitters + 32 recent
TOP_K = 32      # heavy hitters per head by accumulated attention

model = h2o.Model(str(SHARED / "models" / "books4M-f32.gguf"))
print(model)
# books4M was trained on paragraphs with whitespace collapsed: the flat form of the book.
text = (SHARED / "data" / "austen-pride-and-prejudice-flat.txt").read_text(encoding="utf-8")
start = text.index("It is a truth universally acknowledged")  # past the capitalised title
ids = model.tokenize(text[start:start + 20000])[:N_TOKENS]
print(f"{len(ids)} tokens: {model.detokenize(ids[:40])!r}...")

# %% Full cache: accumulated attention per key position.
full = model.session()
full.observe_attention(True)
full.feed(ids)
acc = full.attention()  # per layer: float64 [n_heads, n_positions]
assert all(np.allclose(a.sum(axis=1), len(ids)) for a in acc)  # every row sums to 1
print(f"full cache: {full.kv_bytes} KV bytes for {full.n_past} tokens")

# %% The heavy hitters of each layer (mean over heads), as tokens.
for layer, a in enumerate(acc):
    mean = a.mean(axis=0)
    top = np.argsort(mean)[::-1][:8]
    tokens = ", ".join(f"{p}:{model.piece(ids[p])!r}={mean[p]:.1f}" for p in top)
    print(f"layer {layer}: {tokens}")

# %% H2O with a 64-slot budget, token by token (prefill_chunk=1: every step evicts).
bounded = model.session(kv_policy="h2o", kv_budget=BUDGET, prefill_chunk=1)
bounded.feed(ids)
kept = bounded.kept_positions()  # per layer: int32 [n_kv_heads, BUDGET], ascending
group = model.n_heads // model.n_kv_heads
print(f"h2o {BUDGET}: {bounded.kv_bytes} KV bytes ({bounded.kv_bytes / full.kv_bytes:.0%} of full)")

# How many of the full cache's top-k heavy hitters (older than the recent window) did H2O
# keep? Query heads sharing a KV head are pooled, as the cache pools their scores.
recent = bounded.kv["recent"]
old = len(ids) - recent
overlap = np.zeros((model.n_layers, model.n_kv_heads))
for layer, a in enumerate(acc):
    for kv in range(model.n_kv_heads):
        score = a[kv * group:(kv + 1) * group, :old].sum(axis=0)
        top = set(np.argsort(score)[::-1][:BUDGET - recent].tolist())
        overlap[layer, kv] = len(top & set(kept[layer][kv].tolist())) / len(top)
print("share of full-cache heavy hitters H2O kept, per layer (mean over KV heads):",
      np.round(overlap.mean(axis=1), 2))

# %% Plot: per layer, accumulated attention by position (H2O's kept positions marked) and
# the rank plot (a power law on log-log axes).
fig, axes = plt.subplots(model.n_layers, 2, figsize=(12, 2.2 * model.n_layers),
                         gridspec_kw={"width_ratios": [3, 1]})
positions = np.arange(len(ids))
for layer, a in enumerate(acc):
    ax = axes[layer, 0]
    mean = a.mean(axis=0)
    ax.plot(positions, mean, lw=0.8, color="tab:blue", label="accumulated attention (mean over heads)")
    kept_any = np.unique(kept[layer])
    ax.scatter(kept_any, mean[kept_any], s=10, color="tab:red", zorder=3, label=f"kept by h2o {BUDGET} (any KV head)")
    ax.set_yscale("log")
    ax.set_ylabel(f"layer {layer}")
    ax.set_xlim(0, len(ids))
    ax.text(0.99, 0.9, f"top-{BUDGET - recent} kept {overlap[layer].mean():.0%}", transform=ax.transAxes,
            ha="right", va="top", fontsize=8)
    if layer == 0:
        ax.legend(loc="upper center", fontsize=8, ncol=2)
    rank = axes[layer, 1]
    for h in range(model.n_heads):
        s = np.sort(a[h])[::-1]
        rank.loglog(np.arange(1, len(s) + 1), s, lw=0.6)
    rank.set_ylim(bottom=1e-3)
axes[-1, 0].set_xlabel("key position")
axes[-1, 1].set_xlabel("rank (each line a head)")
axes[0, 0].set_title(f"books4M on Pride and Prejudice, {len(ids)} tokens: accumulated attention per key")
axes[0, 1].set_title("sorted: a few heavy hitters")
fig.tight_layout()
fig.savefig(OUT, dpi=110)
print(f"wrote {OUT}")
