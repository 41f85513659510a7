// A deliberately small GGUF reader for the naive references: scalar metadata and F32 /
// F16 / BF16 tensors widened to double. Written from the format description
// (shared/docs/formats.md), sharing nothing with the engine's reader; it trusts the
// fixture files it is given (bounds are checked, hostile files are not its business).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace h2o::ref {

class NaiveGguf {
 public:
  explicit NaiveGguf(const std::string& path);

  // Scalar metadata (integers, floats, bools as double; strings as string). Arrays are
  // skipped, except their element count, reported by array_size().
  std::optional<double> number(const std::string& key) const;
  std::optional<std::string> string(const std::string& key) const;
  double number_or(const std::string& key, double fallback) const;
  double require_number(const std::string& key) const;
  size_t array_size(const std::string& key) const;  // 0 if absent

  bool has_tensor(const std::string& name) const { return tensors_.count(name) != 0; }
  // Row-major values ([ne1][ne0] for 2-D) and the GGUF shape ne.
  std::vector<double> tensor(const std::string& name, std::vector<uint64_t>* ne = nullptr) const;

 private:
  struct Info {
    std::vector<uint64_t> ne;
    uint32_t type = 0;
    uint64_t offset = 0;
  };
  std::string path_;
  std::vector<uint8_t> bytes_;
  std::map<std::string, std::variant<double, std::string>> meta_;
  std::map<std::string, size_t> array_sizes_;
  std::map<std::string, Info> tensors_;
  size_t data_start_ = 0;
};

// IEEE half and bfloat16 to double, written out by hand.
double half_to_double(uint16_t h);
double bf16_to_double(uint16_t h);

}  // namespace h2o::ref
