// The one reader for user-named input files (common/text_file.h): regular files are read
// whole; directories, FIFOs and devices are refused before any read (a FIFO must not
// block, /dev/zero must not be read at all), and so are files over the cap, each with a
// one-line message naming the path. The llama2.c tokenizer reads through it too.
#include "common/text_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "common/error.h"
#include "tokenizer/tokenizer.h"

namespace h2o {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/h2o_text_file_XXXXXX";
    path_ = mkdtemp(name);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name, const std::string& content) const {
    const std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  std::string fifo(const std::string& name) const {
    const std::string p = path_ + "/" + name;
    EXPECT_EQ(mkfifo(p.c_str(), 0600), 0);
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TextFile, ReadsRegularFilesWhole) {
  TempDir d;
  std::string content(100000, 'x');
  content[5] = '\0';  // bytes, not C strings
  EXPECT_EQ(read_text_file(d.file("a.txt", content)), content);
  EXPECT_EQ(read_text_file(d.file("empty.txt", "")), "");
}

TEST(TextFile, RefusesWhatIsNotARegularFileNamingThePath) {
  TempDir d;
  const std::string fifo = d.fifo("pipe");
  const struct {
    std::string path, kind;
  } cases[] = {{d.path(), "is a directory"}, {fifo, "is a pipe"}, {"/dev/zero", "is a device"}};
  for (const auto& c : cases) {
    const std::string msg = error_of([&] { read_text_file(c.path, "prompt file"); });
    EXPECT_EQ(msg, c.path + ": " + c.kind + ", not a prompt file");
  }
  const std::string missing = error_of([&] { read_text_file(d.path() + "/none", "task file"); });
  EXPECT_EQ(missing, d.path() + "/none: cannot open task file: No such file or directory");
}

TEST(TextFile, CapsTheSize) {
  TempDir d;
  const std::string p = d.file("big.txt", std::string(5000, 'y'));
  EXPECT_EQ(read_text_file(p, "text file", 5000).size(), 5000u);
  EXPECT_EQ(error_of([&] { read_text_file(p, "text file", 4999); }),
            p + ": the text file is 5000 bytes, more than the limit of 4999 bytes");
}

TEST(TextFile, Llama2cTokenizerGoesThroughTheReader) {
  TempDir d;
  const std::string fifo = d.fifo("tok.bin");
  for (const std::string& path : {std::string("/dev/zero"), fifo, d.path()}) {
    const std::string msg = error_of([&] { load_tokenizer_from_llama2c(path, 512); });
    EXPECT_EQ(msg.rfind(path + ": is a", 0), 0u) << msg;
    EXPECT_NE(msg.find("not a tokenizer file"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace h2o
