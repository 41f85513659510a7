// SIMD target selection (src/kernels/dispatch.h): the list of targets this CPU runs, names
// and aliases, and H2O_SIMD forcing a target in the real binary (golden text on each).
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <set>
#include <string>

#include "integration/run_cli.h"
#include "kernels/dispatch.h"
#include "test_paths.h"

namespace h2o {
namespace {

// Sets an environment variable for the CLI children of one test, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(KernelDispatch, ListsTargetsBestFirstWithTheScalarReferenceLast) {
  const auto& targets = available_simd_targets();
  ASSERT_GE(targets.size(), 1u);
  EXPECT_EQ(targets.back().name, "scalar");
  EXPECT_TRUE(targets.back().is_reference());
  std::set<std::string_view> names;
  for (size_t i = 0; i < targets.size(); ++i) {
    EXPECT_TRUE(names.insert(targets[i].name).second) << targets[i].name;
    if (i + 1 < targets.size()) {
      EXPECT_FALSE(targets[i].is_reference());
      // Highway numbers better targets with lower bits.
      if (!targets[i + 1].is_reference()) EXPECT_LT(targets[i].hwy_target, targets[i + 1].hwy_target);
    }
  }
  std::string all;
  for (const auto& t : targets) all += std::string(t.name) + " ";
  std::printf("[ simd targets ] %s(active: %s)\n", all.c_str(), std::string(active_simd_target().name).c_str());
}

TEST(KernelDispatch, FindsTargetsByNameAndAlias) {
  for (const auto& t : available_simd_targets()) {
    const auto found = find_simd_target(t.name);
    ASSERT_TRUE(found.has_value()) << t.name;
    EXPECT_EQ(*found, t);
    EXPECT_STREQ(kernels_for(t).name, std::string(t.name).c_str());
    EXPECT_EQ(kernels_for(t).reference, t.is_reference());
  }
  if (const auto avx3 = find_simd_target("avx3")) EXPECT_EQ(find_simd_target("avx512"), avx3);
  EXPECT_FALSE(find_simd_target("").has_value());
  EXPECT_FALSE(find_simd_target("avx9000").has_value());
  EXPECT_FALSE(find_simd_target("AVX2").has_value());  // names are lower case
}

TEST(KernelDispatch, ActiveTargetIsTheEnvironmentsOrTheBest) {
  const auto& active = active_simd_target();
  const char* env = std::getenv("H2O_SIMD");
  if (env == nullptr || *env == '\0') {
    EXPECT_EQ(active, available_simd_targets().front());
  } else {
    EXPECT_EQ(active, find_simd_target(env));
  }
  EXPECT_EQ(&active_kernels(), &kernels_for(active));
}

// Every target, forced through H2O_SIMD, reproduces the byte-exact greedy golden text (the
// F32 and F16 files: their SIMD sums differ from the scalar ones only in rounding order).
TEST(KernelDispatch, EnvironmentForcesEachTargetAndTheGoldenTextHolds) {
  const std::string golden = test::read_text_file(test::model_path("stories260K.greedy.txt"));
  for (const auto& t : available_simd_targets()) {
    ScopedEnv env("H2O_SIMD", std::string(t.name));
    for (const char* file : {"stories260K-f32.gguf", "stories260K-f16.gguf"}) {
      const auto r = test::run_cli(
          {"generate", "-m", test::model_path(file), "-p", "Once upon a time", "-n", "252", "--temp", "0"});
      ASSERT_EQ(r.exit_code, 0) << t.name << ": " << r.err;
      EXPECT_EQ(r.out, golden) << t.name << " " << file;
    }
  }
}

TEST(KernelDispatch, UnknownTargetIsAOneLineError) {
  ScopedEnv env("H2O_SIMD", "avx9000");
  const auto r = test::run_cli({"generate", "-m", test::model_path("stories260K-f32.gguf"), "-p", "Once", "-n", "4"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("H2O_SIMD=avx9000"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("scalar"), std::string::npos) << r.err;  // lists what is available
}

}  // namespace
}  // namespace h2o
