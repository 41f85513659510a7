#include "kernels/dispatch.h"

#include "kernels/simd_config.h"
// clang-format off
#include <hwy/targets.h>
// clang-format on

#include <array>
#include <cctype>
#include <cstdlib>
#include <string>

#include "common/check.h"
#include "format/types/int_dot.h"
#include "kernels/reference.h"

namespace h2o {
namespace {

constexpr std::string_view kScalar = "scalar";

// Lower-case Highway names, stored for the life of the process (string_view targets).
std::string_view target_name(int64_t bit) {
  static const auto names = [] {
    std::array<std::string, 64> n;
    for (size_t i = 0; i < 63; ++i) {
      std::string s = hwy::TargetName(int64_t{1} << i);
      for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      // Highway's one-lane fallback (compiled instead of EMU128 by GCC < 12.3) must not
      // take the reference's name.
      n[i] = (int64_t{1} << i) == HWY_SCALAR ? "hwy_scalar" : std::move(s);
    }
    return n;
  }();
  return names[static_cast<size_t>(hwy::Num0BitsBelowLS1Bit_Nonzero64(static_cast<uint64_t>(bit)))];
}

// Slot of a target in the per-target tables: its bit position, 63 for the reference.
size_t slot(const SimdTarget& t) {
  return t.is_reference() ? 63 : hwy::Num0BitsBelowLS1Bit_Nonzero64(static_cast<uint64_t>(t.hwy_target));
}

std::string_view canonical(std::string_view name) {
  if (name == "avx512") return "avx3";
  if (name == "avx512_vnni" || name == "avx512vnni") return "avx3_dl";
  return name;
}

SimdTarget choose_from_environment() {
  const char* env = std::getenv("H2O_SIMD");
  const std::string_view want = env ? env : "";
  if (want.empty() || want == "auto" || want == "best") return available_simd_targets().front();
  if (auto t = find_simd_target(want)) return *t;
  std::string names;
  for (const auto& t : available_simd_targets()) names += (names.empty() ? "" : ", ") + std::string(t.name);
  fail("H2O_SIMD={} is not a SIMD target this CPU runs (available: {})", want, names);
}

}  // namespace

const std::vector<SimdTarget>& available_simd_targets() {
  static const std::vector<SimdTarget> targets = [] {
    std::vector<SimdTarget> v;
    // Lower bits are better targets; HWY_TARGETS is what simd_*.cpp compiled.
    for (int64_t bits = hwy::SupportedTargets() & HWY_TARGETS; bits != 0; bits &= bits - 1) {
      const int64_t bit = bits & -bits;
      v.push_back(SimdTarget{target_name(bit), bit});
    }
    v.push_back(SimdTarget{kScalar, 0});
    return v;
  }();
  return targets;
}

std::optional<SimdTarget> find_simd_target(std::string_view name) {
  const std::string_view want = canonical(name);
  for (const auto& t : available_simd_targets()) {
    if (t.name == want) return t;
  }
  return std::nullopt;
}

const SimdTarget& active_simd_target() {
  static const SimdTarget target = choose_from_environment();
  return target;
}

const KernelTable& kernels_for(const SimdTarget& target) {
  // One immutable table per available target, built on first use (thread-safe static).
  static const std::array<KernelTable, 64> tables = [] {
    std::array<KernelTable, 64> all{};
    for (const auto& t : available_simd_targets()) {
      KernelTable& k = all[slot(t)];
      k.name = t.name.data();
      if (t.is_reference()) {
        k.reference = true;
        k.dot_f32 = &dot_f32_reference;
        k.axpy_f32 = &axpy_f32_reference;
        k.dot_rows_f32 = &dot_rows_f32_reference;
        k.axpy_rows_f32 = &axpy_rows_f32_reference;
        k.softmax_f32 = &softmax_f32_reference;
        k.swiglu_f32 = &swiglu_f32_reference;
        k.quantize_q8 = &quantize_q8_0_reference;
        k.quantize_q8k = &quantize_q8_k_reference;
      } else {
        fill_float_kernels(t.hwy_target, k);
        fill_quant_kernels(t.hwy_target, k);
      }
    }
    return all;
  }();
  const KernelTable& k = tables[slot(target)];
  if (k.dot_f32 == nullptr) fail("SIMD target {} is not available on this CPU", target.name);
  return k;
}

const KernelTable& active_kernels() {
  static const KernelTable& k = kernels_for(active_simd_target());
  return k;
}

}  // namespace h2o
