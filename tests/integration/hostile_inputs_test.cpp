// The CLI against careless and hostile inputs, each run bounded in time and memory so that
// a regression fails the test instead of hanging or eating the machine:
//   - file inputs that are not regular files (a device that never ends, a FIFO that never
//     opens, a directory) are refused at once with one line naming the path;
//   - out-of-range seeds are refused instead of wrapping, and --kv-budget under policy
//     full is refused as the server refuses it;
//   - a GGUF metadata array is not blown up in memory;
//   - terminal escapes in a model file never reach the terminal raw.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "format/gguf.h"
#include "integration/run_cli.h"
#include "test_paths.h"

namespace h2o::test {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

// A hostile input must fail fast and small.
constexpr CliBounds kBounds{std::chrono::milliseconds(20000), 400 * 1024};

class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/h2o_hostile_XXXXXX";
    path_ = mkdtemp(name);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string path(const std::string& name) const { return path_ + "/" + name; }
  std::string fifo(const std::string& name) const {
    const std::string p = path(name);
    EXPECT_EQ(mkfifo(p.c_str(), 0600), 0);
    return p;
  }
  const std::string& dir() const { return path_; }

 private:
  std::string path_;
};

void expect_refused(const std::vector<std::string>& args, const std::string& path, const std::string& kind) {
  const CliResult r = run_cli(args, kBounds);
  EXPECT_EQ(r.killed, "") << "peak RSS " << r.peak_rss_kb << " KiB; " << args[0] << " " << path;
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(path + ": is " + kind), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(HostileInputs, NonRegularFilesAreRefusedByEveryFileInput) {
  TempDir d;
  const std::string gguf = model_path("stories260K-f32.gguf");
  const struct {
    std::string path, kind;
  } inputs[] = {{"/dev/zero", "a device"}, {d.fifo("fifo"), "a pipe"}, {d.dir(), "a directory"}};
  for (const auto& in : inputs) {
    expect_refused({"generate", "-m", model_path("stories260K.bin"), "--tokenizer", in.path, "-p", "x", "-n", "1"},
                   in.path, in.kind);
    expect_refused({"perplexity", "-m", gguf, "-f", in.path}, in.path, in.kind);
    expect_refused({"batch", "-m", gguf, "-f", in.path}, in.path, in.kind);
    expect_refused({"batch", "-m", gguf, "--jsonl", "-f", in.path}, in.path, in.kind);
    expect_refused({"analyze", "-m", gguf, "-f", in.path, "--out-dir", d.path("out")}, in.path, in.kind);
  }
}

TEST(HostileInputs, SeedsOutOfRangeAreRefused) {
  const std::string gguf = model_path("stories260K-f32.gguf");
  for (const std::string seed : {"18446744073709551616", "1e23", "-1", "0x10", "12abc", ""}) {
    const CliResult r = run_cli({"generate", "-m", gguf, "-p", "x", "-n", "1", "--seed", seed}, kBounds);
    EXPECT_EQ(r.exit_code, 2) << seed << ": " << r.err;
    EXPECT_NE(r.err.find("--seed"), std::string::npos) << r.err;
  }
  const CliResult kv = run_cli({"generate", "-m", gguf, "-p", "x", "-n", "1", "--kv-policy", "random", "--kv-budget",
                                "8", "--kv-seed", "99999999999999999999"},
                               kBounds);
  EXPECT_EQ(kv.exit_code, 2) << kv.err;
  const CliResult max =
      run_cli({"generate", "-m", gguf, "-p", "x", "-n", "1", "--seed", "18446744073709551615"}, kBounds);
  EXPECT_EQ(max.exit_code, 0) << max.err;
}

TEST(HostileInputs, KvBudgetUnderPolicyFullIsRefusedLikeTheServer) {
  const std::string gguf = model_path("stories260K-f32.gguf");
  for (const std::vector<std::string> extra :
       {std::vector<std::string>{"--kv-budget", "10"}, {"--kv-policy", "full", "--kv-budget", "20%"}}) {
    std::vector<std::string> args = {"generate", "-m", gguf, "-p", "x", "-n", "4"};
    args.insert(args.end(), extra.begin(), extra.end());
    const CliResult r = run_cli(args, kBounds);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("--kv-budget: not used by policy full"), std::string::npos) << r.err;
  }
  TempDir d;
  const std::string prompts = d.path("p.jsonl");
  std::ofstream(prompts) << R"({"prompt":"Once","max_tokens":2,"kv_policy":"full","kv_budget":8})"
                         << "\n"
                         << R"({"prompt":"Once","max_tokens":2})"
                         << "\n";
  const CliResult b = run_cli({"batch", "-m", gguf, "-f", prompts}, kBounds);
  EXPECT_EQ(b.exit_code, 1) << b.err;
  EXPECT_NE(b.out.find("kv_budget: not used by policy full"), std::string::npos) << b.out;
  EXPECT_NE(b.out.find("\"n_generated\":2"), std::string::npos) << b.out;
}

// The metadata and tensors of a real model, with `change` applied to the writer.
std::string rewritten_model(const TempDir& d, const std::string& name, const std::function<void(GgufWriter&)>& change) {
  const GgufFile src = GgufFile::open(model_path("stories260K-f32.gguf"));
  GgufWriter w(src.alignment());
  for (const std::string& key : src.key_order()) {
    if (key != "general.alignment") w.set(key, *src.find(key));
  }
  for (const GgufTensor& t : src.tensors())
    w.add_tensor(t.name, t.ne, t.type, std::span<const uint8_t>(t.data, static_cast<size_t>(t.n_bytes)));
  change(w);
  const std::string path = d.path(name);
  w.write(path);
  return path;
}

TEST(HostileInputs, TerminalEscapesFromAModelFileAreEscapedInErrors) {
  TempDir d;
  const std::string evil = "\x1b]0;pwned\x07\x1b[2J\x9b\xc2\x9b";
  const std::string path =
      rewritten_model(d, "evil.gguf", [&](GgufWriter& w) { w.set_string("general.architecture", evil); });
  for (const std::vector<std::string> args : {std::vector<std::string>{"generate", "-m", path, "-p", "x", "-n", "1"},
                                              {"perplexity", "-m", path, "-f", path}}) {
    const CliResult r = run_cli(args, kBounds);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\x07'), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("\xc2\x9b"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("\\x1B]0;pwned\\x07\\x1B[2J"), std::string::npos) << r.err;
  }
}

TEST(HostileInputs, LargeMetadataArraysAreNotBlownUpInMemory) {
  // 32 Mi UINT8 items (32 MiB of file): the reader used to hold each as a 48-byte value
  // (1.6 GB); stored as its bytes it needs about the file's size.
  TempDir d;
  const std::string path = rewritten_model(d, "array.gguf", [](GgufWriter& w) {
    GgufArray a;
    a.elem_type = GgufValueType::UINT8;
    const std::vector<uint8_t> bytes(size_t{32} << 20, 7);
    a.items.append_scalars(GgufValueType::UINT8, bytes, bytes.size());
    w.set("evil.array", GgufValue{GgufValueType::ARRAY, std::move(a)});
  });
  const CliResult r = run_cli({"inspect", path}, kBounds);
  EXPECT_EQ(r.killed, "") << "peak RSS " << r.peak_rss_kb << " KiB";
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("evil.array"), std::string::npos);
  // Under AddressSanitizer freed blocks stay resident in its quarantine (256 MiB by default)
  // and shadow memory adds to that: a peak of 282 MiB was seen there, against under 200 in
  // a plain build; the blow-up this guards against was 1.6 GB.
#if H2O_UNDER_ASAN
  constexpr long kMaxRssKb = 400 * 1024;
#else
  constexpr long kMaxRssKb = 200 * 1024;
#endif
  EXPECT_LT(r.peak_rss_kb, kMaxRssKb);
}

}  // namespace
}  // namespace h2o::test
