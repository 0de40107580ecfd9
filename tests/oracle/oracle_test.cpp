// Oracle behaviour: priority order, overrides (API and FUSEDMOE_BACKEND), refusals with reasons,
// nothing fits, out-of-tree registration, and the dispatch log.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>

#include "testing/moe_case.hpp"
#include "testing/scoped_env.hpp"

namespace fusedmoe {
namespace {

// Captures log lines for the duration of a test.
class LogCapture {
 public:
  explicit LogCapture(LogLevel level) : previous_(log_level()) {
    set_log_level(level);
    set_log_callback([this](LogLevel, std::string_view message) { lines.emplace_back(message); });
  }
  ~LogCapture() {
    set_log_callback(nullptr);
    set_log_level(previous_);
  }
  bool contains(std::string_view fragment) const {
    for (const std::string& line : lines) {
      if (line.find(fragment) != std::string::npos) return true;
    }
    return false;
  }
  std::vector<std::string> lines;

 private:
  LogLevel previous_;
};

// A backend that accepts only hidden sizes divisible by 64, built on the reference Experts.
BackendInfo fake_backend(std::string id) {
  BackendInfo info = *find_backend("cpu_reference");
  info.id = std::move(id);
  info.supports = [](const MoeConfig& config, const Platform&, ActivationFormat format) -> Support {
    if (format != ActivationFormat::standard) return Support::no("standard format only");
    if (config.hidden_size % 64 != 0) {
      return Support::no("hidden_size " + std::to_string(config.hidden_size) + " is not a multiple of 64");
    }
    return Support::yes();
  };
  return info;
}

using testing::ScopedEnv;

TEST(Oracle, PriorityListStartsWithTheFastestAndEndsWithTheReferenceFamily) {
  const std::vector<const BackendInfo*> cpu = backends_for(DeviceKind::cpu);
  ASSERT_GE(cpu.size(), 3u);
  EXPECT_EQ(cpu[cpu.size() - 3]->id, "cpu_reference");
  EXPECT_EQ(cpu[cpu.size() - 2]->id, "cpu_reference_batched");
  EXPECT_EQ(cpu.back()->id, "cpu_reference_monolithic");
}

TEST(Oracle, SelectsTheFirstSupportedCandidateAndExplainsTheRest) {
  MoeConfig config = testing::make_config(8, 2, 32, 16);
  const Selection standard = select_backend(config, Platform::detect());
  ASSERT_NE(standard.backend, nullptr);
  EXPECT_FALSE(standard.overridden);
  for (const Candidate& candidate : standard.considered) {
    if (candidate.backend == standard.backend) break;
    EXPECT_FALSE(candidate.support.ok) << candidate.backend->id << " is supported but ranked higher";
  }
  config.parallel.dispatch = DispatchMode::local_batched;
  const Selection batched = select_backend(config, Platform::detect());
  EXPECT_EQ(batched.backend->id, "cpu_reference_batched");
  const std::string text = batched.describe();
  EXPECT_NE(text.find("cpu_reference: skipped: consumes the standard format"), std::string::npos) << text;
  EXPECT_NE(text.find("cpu_reference_batched: selected"), std::string::npos) << text;
}

TEST(Oracle, OverrideThroughTheApiAndTheEnvironment) {
  const MoeConfig config = testing::make_config(8, 2, 32, 16);
  const Selection forced = select_backend(config, Platform::detect(), "cpu_reference_monolithic");
  EXPECT_EQ(forced.backend->id, "cpu_reference_monolithic");
  EXPECT_TRUE(forced.overridden);
  {
    ScopedEnv env("FUSEDMOE_BACKEND", "cpu_reference_monolithic");
    EXPECT_EQ(select_backend(config, Platform::detect()).backend->id, "cpu_reference_monolithic");
    // The API argument wins over the environment.
    EXPECT_EQ(select_backend(config, Platform::detect(), "cpu_reference").backend->id, "cpu_reference");
  }
}

TEST(Oracle, UnknownOrUnsupportedOverrideIsAnErrorNotAFallback) {
  MoeConfig config = testing::make_config(8, 2, 32, 16);
  try {
    select_backend(config, Platform::detect(), "cuda_nonexistent");
    FAIL() << "unknown override accepted";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("unknown backend 'cuda_nonexistent'"), std::string::npos);
    EXPECT_NE(std::string(error.what()).find("cpu_reference"), std::string::npos)
        << "should list the known ids";
  }
  config.parallel.dispatch = DispatchMode::local_batched;
  try {
    select_backend(config, Platform::detect(), "cpu_reference");
    FAIL() << "unsupported override accepted";
  } catch (const Unsupported& error) {
    EXPECT_NE(std::string(error.what()).find("consumes the standard format"), std::string::npos)
        << error.what();
  }
  {
    ScopedEnv env("FUSEDMOE_BACKEND", "no_such_backend");
    EXPECT_THROW(select_backend(testing::make_config(8, 2, 32, 16), Platform::detect()), InvalidArgument);
  }
}

TEST(Oracle, NothingFitsListsEveryCandidateWithItsReason) {
  MoeConfig config = testing::make_config(8, 2, 32, 16);
  config.device = Device::cuda(0);
  Platform platform = Platform::detect(config.device);
  platform.cuda = CudaInfo{};  // no device, the same answer on every machine
  platform.cuda.reason = "synthetic: no device";
  try {
    select_backend(config, platform);
    FAIL() << "a CUDA config found a backend without a CUDA device";
  } catch (const Unsupported& error) {
    EXPECT_NE(std::string(error.what()).find("no backend supports"), std::string::npos) << error.what();
    for (const BackendInfo* backend : backends_for(DeviceKind::cuda)) {
      EXPECT_NE(std::string(error.what()).find(backend->id + ": skipped: "), std::string::npos)
          << error.what();
    }
  }
}

TEST(Oracle, OutOfTreeBackendRegistersWithOneCallAndReportsItsReasons) {
  register_backend(fake_backend("test_out_of_tree"));
  const MoeConfig fits = testing::make_config(8, 2, 64, 16);
  EXPECT_EQ(select_backend(fits, Platform::detect()).backend->id, "test_out_of_tree");
  {
    LogCapture capture(LogLevel::dispatch);
    const MoeConfig misfit = testing::make_config(8, 2, 48, 16);
    const Selection selection = select_backend(misfit, Platform::detect());
    EXPECT_NE(selection.backend->id, "test_out_of_tree");
    EXPECT_TRUE(capture.contains("skip test_out_of_tree: hidden_size 48 is not a multiple of 64"))
        << "one dispatch log line per skipped candidate";
  }
  // It computes, through the normal layer flow (the fp64 reference of the routing it reports).
  FusedMoeLayer layer(fits, LayerOptions::with_backend("test_out_of_tree"));
  const MoeWeights weights = random_weights(fits, 3);
  layer.set_weights(weights);
  layer.finalize_weights();
  const Tensor hidden = random_hidden(fits, 5, 4);
  const Tensor out = testing::expect_layer_matches_reference(layer, weights, hidden);
  EXPECT_EQ(layer.selection().backend->id, "test_out_of_tree");

  EXPECT_THROW(register_backend(fake_backend("test_out_of_tree")), InvalidArgument) << "duplicate id";
  EXPECT_TRUE(unregister_backend("test_out_of_tree"));
  EXPECT_FALSE(unregister_backend("test_out_of_tree"));
  // A layer that selected it keeps a valid entry (and keeps computing).
  EXPECT_EQ(layer.selection().backend->id, "test_out_of_tree");
  layer.forward(hidden, out);
  EXPECT_EQ(find_backend("test_out_of_tree"), nullptr);
  EXPECT_THROW(unregister_backend("cpu_reference"), InvalidArgument);
}

TEST(Oracle, RegistrationValidatesTheEntry) {
  BackendInfo info = fake_backend("test_bad");
  info.api_version = kBackendApiVersion + 1;
  EXPECT_THROW(register_backend(info), InvalidArgument);
  info = fake_backend("test_bad");
  info.make_experts = nullptr;
  EXPECT_THROW(register_backend(info), InvalidArgument);
  EXPECT_THROW(register_backend(fake_backend("test_bad"), "no_such_backend"), InvalidArgument);
  register_backend(fake_backend("test_before_reference"), "cpu_reference");
  const std::vector<const BackendInfo*> cpu = backends_for(DeviceKind::cpu);
  const auto placed = std::find_if(cpu.begin(), cpu.end(), [](const BackendInfo* backend) {
    return backend->id == "test_before_reference";
  });
  ASSERT_NE(placed, cpu.end()) << "registered but not listed";
  ASSERT_NE(placed + 1, cpu.end()) << "listed last, not before cpu_reference";
  EXPECT_EQ((*(placed + 1))->id, "cpu_reference");
  unregister_backend("test_before_reference");
}

TEST(Oracle, MaxCpuIsaCapsDetection) {
  {
    ScopedEnv env("FUSEDMOE_MAX_CPU_ISA", "scalar");
    EXPECT_EQ(Platform::detect().cpu.isa, CpuIsa::scalar);
  }
  {
    ScopedEnv env("FUSEDMOE_MAX_CPU_ISA", "avx9000");
    EXPECT_THROW(Platform::detect(), InvalidArgument);
  }
}

}  // namespace
}  // namespace fusedmoe
