// The type registry: one line per type (its file is format/types/<type>.cpp). Order is
// the slot order of tables indexed by type (kernels); kTypeSlots must match.
#include <array>

#include "format/types/types.h"

namespace h2o {
namespace {

const std::array<const TypeInfo*, kTypeSlots> kTypes = {
    &kF32Type,  &kF16Type,  &kBF16Type,                                                  // float
    &kQ4_0Type, &kQ4_1Type, &kQ5_0Type, &kQ5_1Type, &kQ8_0Type, &kIQ4_NLType,            // blocks of 32
    &kQ2_KType, &kQ3_KType, &kQ4_KType, &kQ5_KType, &kQ6_KType, &kIQ4_XSType,            // super-blocks of 256
};

}  // namespace

std::span<const TypeInfo* const> all_types() { return kTypes; }

}  // namespace h2o
