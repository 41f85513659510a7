#!/usr/bin/env bash
# Configures and builds the sanitizer build in build-fuzz/: the library and the CLI built
# with clang, AddressSanitizer, UndefinedBehaviorSanitizer and libFuzzer's coverage
# instrumentation (CMake option H2O_FUZZ). One instrumented build serves both the fuzz
# targets (scripts/fuzz.sh) and the sanitizer run of the test suite (scripts/test.sh), so
# the library is instrumented and compiled once.
#
#   scripts/sanitized_build.sh TARGET...      (e.g. h2o_tests, fuzz_targets)
#
# -O1 (libFuzzer's usual level) with line tables for the reports: about half the compile
# time of -O2 -g. The test sources themselves are not instrumented (tests/CMakeLists.txt).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-fuzz"

cxx="${CXX:-}"
if [[ -z "$cxx" || "$cxx" != *clang* ]]; then
  cxx="$(command -v clang++ || command -v clang++-14 || true)"
fi
[[ -n "$cxx" ]] || { echo "sanitized_build.sh: clang++ not found (libFuzzer needs clang)" >&2; exit 1; }

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -DNDEBUG" -DH2O_FUZZ=ON -DH2O_BUILD_TESTS=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target "$@"
