// Include first (before any other header) in files whose float arithmetic must round as
// written: a separate multiply and add must not become a fused multiply-add. GCC fuses
// across statements by default (-ffp-contract=fast) wherever the target has FMA, which
// Highway's AVX2/AVX-512 code does, so a kernel would no longer reproduce its scalar
// reference bit for bit, and an encoder would no longer write ggml's bytes (ggml-base is
// compiled without FMA on x86). Explicit fused operations (hn::MulAdd, std::fma) are unaffected.
#pragma once

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
