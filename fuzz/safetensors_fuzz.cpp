// libFuzzer entry for the safetensors reader: any byte string must either parse or throw a
// one-line h2o::Error naming the file -- never crash, hang, read out of bounds or allocate
// wildly. Files that parse are held to the format's invariants, recomputed here in 128-bit
// arithmetic: tensors tile the data buffer from 0 to the end of the input, each tensor's
// bytes equal numel * bits / 8, and every data pointer lies inside the input (the first and
// last byte of each tensor are read, so AddressSanitizer catches a bad one).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "common/error.h"
#include "format/safetensors.h"

namespace {

constexpr std::string_view kName = "fuzz.safetensors";

void check_message(const h2o::Error& e) {
  const std::string_view m = e.what();
  if (!m.starts_with(kName) || m.find('\n') != std::string_view::npos) __builtin_trap();
}

void check_tensor(const h2o::SafetensorsTensor& t, const uint8_t* data, size_t size) {
  // Any zero dimension makes the tensor empty; otherwise the product must fit in 64 bits
  // (each factor < 2^64 and the partial product <= 2^64 here, so 128 bits never wrap).
  unsigned __int128 elems = 1;
  for (const uint64_t d : t.shape) {
    if (d == 0) elems = 0;
  }
  for (const uint64_t d : t.shape) {
    if (elems == 0) break;
    elems *= d;
    if (elems > UINT64_MAX) __builtin_trap();
  }
  if (elems != t.n_elements) __builtin_trap();
  const unsigned __int128 bits = elems * h2o::dtype_bits(t.dtype);
  if (bits % 8 != 0 || bits / 8 != t.n_bytes) __builtin_trap();
  if (t.data < data || t.data > data + size || t.n_bytes > static_cast<uint64_t>(data + size - t.data)) {
    __builtin_trap();
  }
  if (t.n_bytes > 0) {
    volatile uint8_t sink = t.data[0];
    sink = static_cast<uint8_t>(sink ^ t.data[t.n_bytes - 1]);
  }
  try {
    const h2o::TensorType type = t.weight_type();
    if (t.n_bytes >= 4) {  // what a loader does with an unaligned pointer: copy
      float f = 0;
      std::memcpy(&f, t.data, type == h2o::TensorType::F32 ? 4 : 2);
      (void)f;
    }
  } catch (const h2o::Error& e) {
    check_message(e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const h2o::SafetensorsFile f =
        h2o::SafetensorsFile::parse(std::span<const uint8_t>(data, size), std::string(kName));
    uint64_t next = 0;
    for (const auto& t : f.tensors()) {
      if (t.offset != next || f.find(t.name) != &t) __builtin_trap();
      check_tensor(t, data, size);
      next = t.offset + t.n_bytes;
    }
    if (8 + f.header_bytes() + next != size) __builtin_trap();
  } catch (const h2o::Error& e) {
    check_message(e);  // rejected cleanly: the expected outcome for most inputs
  }
  return 0;
}
