// libFuzzer entry for the GGUF reader: any byte string must either parse or throw
// h2o::Error -- never crash, hang, read out of bounds or allocate wildly. Inputs that parse
// are also exercised the way the engine and `inspect` use them: metadata accessors and
// display strings, a read of every tensor's first and last byte and its first decoded row
// (libFuzzer's input buffer is exactly `size` bytes, so ASan catches any bad pointer), and
// a write/re-read round trip through GgufWriter.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/error.h"
#include "format/gguf.h"
#include "format/tensor_type.h"

namespace {

constexpr uint64_t kMaxRowToDecode = 1 << 16;  // elements

void exercise_value(const std::string& key, const h2o::GgufValue& v) {
  (void)v.to_display_string();
  (void)v.to_display_string(0);
  try {
    if (v.is_integer()) (void)v.as_int(key);
    (void)v.as_float(key);
  } catch (const h2o::Error&) {
  }
  // Array items through the accessors the tokenizer uses (compact storage, typed views).
  if (v.type != h2o::GgufValueType::ARRAY) return;
  const h2o::GgufArray& a = v.as_array(key);
  if (!a.items.empty() && a.items.type() != a.elem_type) __builtin_trap();
  for (size_t i = 0; i < a.items.size() && i < 64; ++i) {
    const h2o::GgufItem item = a.items[i];
    try {
      if (item.type() == h2o::GgufValueType::STRING) (void)item.as_string(key);
      if (item.is_integer()) (void)item.as_int(key);
      if (item.type() == h2o::GgufValueType::ARRAY) exercise_value(key, item.value());
      (void)item.as_float(key);
    } catch (const h2o::Error&) {
    }
  }
}

// The typed accessors the model loader uses, on every key.
void exercise_accessors(const h2o::GgufFile& g) {
  for (const auto& key : g.key_order()) {
    try {
      (void)g.get_int(key);
    } catch (const h2o::Error&) {
    }
    try {
      (void)g.get_float(key);
    } catch (const h2o::Error&) {
    }
    try {
      (void)g.get_string(key);
    } catch (const h2o::Error&) {
    }
  }
  for (const auto& t : g.tensors()) {
    if (g.find_tensor(t.name) != &t) __builtin_trap();
  }
}

// The sizes the reader reports must be the true ones (a wrapped size would pass bounds
// checks while describing a huge tensor). Computed independently in 128 bits.
void check_sizes(const h2o::GgufTensor& t) {
  unsigned __int128 elems = 1;
  for (uint64_t n : t.ne) {
    elems *= n;  // each factor < 2^64 and the partial product <= 2^64: no wrap
    if (elems > UINT64_MAX) __builtin_trap();
  }
  const auto& tr = h2o::traits(t.type);
  const unsigned __int128 bytes = elems / tr.block_elems * tr.block_bytes;
  if (t.ne.empty() || elems != t.n_elements || bytes != t.n_bytes) __builtin_trap();
}

void exercise_tensor(const h2o::GgufTensor& t) {
  check_sizes(t);
  if (t.n_bytes == 0) return;
  volatile uint8_t sink = t.data[0];
  sink = static_cast<uint8_t>(sink ^ t.data[t.n_bytes - 1]);
  const uint64_t row = t.ne[0];
  if (row == 0 || row > kMaxRowToDecode) return;
  if (h2o::row_bytes(t.type, static_cast<size_t>(row)) > t.n_bytes) return;
  std::vector<float> out(static_cast<size_t>(row));
  h2o::dequantize_row(t.type, t.data, out.data(), static_cast<size_t>(row));
}

// Writes the parsed content back out and parses it again: the reader must accept what the
// writer produces from anything the reader accepted.
void round_trip(const h2o::GgufFile& g, size_t input_size) {
  uint64_t total = 0;
  for (const auto& t : g.tensors()) total += t.n_bytes;
  // Overlapping tensors could make the copy far larger than the input: skip those.
  if (total > 2 * static_cast<uint64_t>(input_size)) return;
  h2o::GgufWriter w(g.alignment());
  for (const auto& key : g.key_order()) w.set(key, *g.find(key));
  for (const auto& t : g.tensors()) w.add_tensor(t.name, t.ne, t.type, {t.data, t.n_bytes});
  const std::vector<uint8_t> bytes = w.to_bytes();
  const h2o::GgufFile again = h2o::GgufFile::parse(bytes, "round trip");
  if (again.tensors().size() != g.tensors().size() || again.metadata().size() != g.metadata().size()) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  h2o::GgufFile g;
  try {
    g = h2o::GgufFile::parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
  } catch (const h2o::Error&) {
    return 0;  // rejected cleanly: the expected outcome for most inputs
  }
  for (const auto& key : g.key_order()) exercise_value(key, *g.find(key));
  exercise_accessors(g);
  for (const auto& t : g.tensors()) exercise_tensor(t);
  round_trip(g, size);
  return 0;
}
