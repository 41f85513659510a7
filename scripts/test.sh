#!/usr/bin/env bash
# Runs the whole test suite: the Release build's tests and the Python module's
# (tests/python, pytest), then the same C++ tests against the engine built with
# AddressSanitizer + UndefinedBehaviorSanitizer (scripts/sanitized_build.sh), then a
# bounded run of every fuzz target from that same build (H2O_FUZZ_SECONDS
# each, default 15: about 3.5 minutes for the thirteen). Needs scripts/setup.sh to have run
# once. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)"

# The Python module (docs/python.md) for Debian's python3 (PYTHON overrides), then its
# tests against the module as built (build/python), without installing it.
PYTHON="${PYTHON:-/usr/bin/python3}"
cmake -S . -B build -DH2O_PYTHON=ON -DPYTHON_EXECUTABLE="$PYTHON" >/dev/null
cmake --build build -j"$(nproc)" --target h2o_python
PYTHONPATH="$PWD/build/python" "$PYTHON" -m pytest -q -p no:cacheprovider tests/python

# Sanitizers: the suite again against the library and CLI built with AddressSanitizer and
# UndefinedBehaviorSanitizer (clang, -O1), the build the fuzz targets below share.
scripts/sanitized_build.sh h2o_tests  # and the CLI it runs
# The Release run above holds every case of the KV policy grid to the naive reference;
# under the sanitizers its chunk-7 third (every policy, budget, position mode and storage
# type, prefill in chunks then decoding) runs the same code paths, and the per-line CLI
# tokenizer goldens are left to the library's golden tests (the grid alone was 1438 of
# 2512 test-seconds under the sanitizers); the lm-eval replay (an equality of scores over
# many requests) is left to the Release run, as ServeLogprobs drives the same server code.
ctest --test-dir build-fuzz --output-on-failure -j"$(nproc)" \
  -E "${H2O_ASAN_EXCLUDE:-KvPolicyGrid.*(_chunk1|_whole)|TokenizeCli.SampledGoldenLines|LmEvalReplay}"

scripts/fuzz.sh "${H2O_FUZZ_SECONDS:-15}"
