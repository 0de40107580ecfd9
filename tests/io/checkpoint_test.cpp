// Tests of SafetensorsCheckpoint: single-file and sharded checkpoint directories, lazy shard opening,
// and malformed index files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "fusedmoe/error.hpp"
#include "fusedmoe/safetensors.hpp"

namespace fusedmoe {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("fusedmoe_checkpoint_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code error;
    fs::remove_all(path_, error);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_text(const fs::path& path, std::string_view text) {
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream.write(text.data(), static_cast<std::streamsize>(text.size()));
  ASSERT_TRUE(stream.good()) << path;
}

Tensor filled(std::initializer_list<std::int64_t> shape, float first) {
  Tensor tensor = Tensor::empty(DType::fp32, shape);
  for (std::int64_t index = 0; index < tensor.numel(); ++index) {
    tensor.data_as<float>()[index] = first + static_cast<float>(index);
  }
  return tensor;
}

constexpr const char* kShard1 = "model-00001-of-00002.safetensors";
constexpr const char* kShard2 = "model-00002-of-00002.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";

// Layer 0 in shard 1, layer 1 in shard 2, like a Hugging Face sharded save.
void write_sharded(const fs::path& directory) {
  SafetensorsWriter first;
  first.add("model.layers.0.mlp.gate.weight", filled({4, 8}, 0.0f));
  first.add("model.layers.0.mlp.experts.0.up_proj.weight", filled({2, 8}, 100.0f));
  first.write(directory / kShard1);
  SafetensorsWriter second;
  second.add("model.layers.1.mlp.gate.weight", filled({4, 8}, 1000.0f));
  second.add("lm_head.weight", Tensor::zeros(DType::bf16, {3, 8}));
  second.write(directory / kShard2);
  write_text(directory / kIndex, std::string(R"({
  "metadata": {"total_size": 368},
  "weight_map": {
    "model.layers.0.mlp.gate.weight": ")") +
                                     kShard1 + R"(",
    "model.layers.0.mlp.experts.0.up_proj.weight": ")" +
                                     kShard1 + R"(",
    "model.layers.1.mlp.gate.weight": ")" +
                                     kShard2 + R"(",
    "lm_head.weight": ")" + kShard2 + R"("
  }
})");
}

template <class Call>
std::string io_error_message(Call&& call) {
  try {
    call();
  } catch (const IoError& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected an IoError";
  return {};
}

TEST(SafetensorsCheckpoint, ShardedOpensShardsLazily) {
  TempDir dir;
  write_sharded(dir.path());
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir.path());
  EXPECT_EQ(checkpoint.directory(), dir.path());
  EXPECT_EQ(checkpoint.num_shards(), 2u);
  EXPECT_EQ(checkpoint.num_open_shards(), 0u);
  EXPECT_EQ(checkpoint.names(),
            (std::vector<std::string>{"lm_head.weight", "model.layers.0.mlp.experts.0.up_proj.weight",
                                      "model.layers.0.mlp.gate.weight", "model.layers.1.mlp.gate.weight"}));
  EXPECT_TRUE(checkpoint.contains("lm_head.weight"));
  EXPECT_FALSE(checkpoint.contains("model.norm.weight"));
  EXPECT_EQ(checkpoint.shard_of("lm_head.weight"), dir.path() / kShard2);
  EXPECT_EQ(checkpoint.num_open_shards(), 0u);  // names and shard_of need no shard

  const Tensor gate0 = checkpoint.load("model.layers.0.mlp.gate.weight");
  EXPECT_EQ(checkpoint.num_open_shards(), 1u);
  EXPECT_EQ(gate0.size(0), 4);
  EXPECT_EQ(gate0.data_as<float>()[31], 31.0f);
  const TensorView up = checkpoint.view("model.layers.0.mlp.experts.0.up_proj.weight");
  EXPECT_EQ(up.data_as<float>()[0], 100.0f);
  EXPECT_EQ(checkpoint.num_open_shards(), 1u);

  EXPECT_EQ(checkpoint.info("model.layers.1.mlp.gate.weight").shape, (std::vector<std::int64_t>{4, 8}));
  EXPECT_EQ(checkpoint.num_open_shards(), 2u);
  const Tensor gate1 = checkpoint.load_as("model.layers.1.mlp.gate.weight", DType::bf16);
  EXPECT_EQ(gate1.dtype(), DType::bf16);
  EXPECT_EQ(bf16_to_float(gate1.data_as<std::uint16_t>()[0]), 1000.0f);
  EXPECT_EQ(checkpoint.file_of("lm_head.weight").path(), dir.path() / kShard2);

  const std::string message = io_error_message([&] { (void)checkpoint.load("model.norm.weight"); });
  EXPECT_NE(message.find("tensor 'model.norm.weight' is not in the checkpoint"), std::string::npos)
      << message;
}

TEST(SafetensorsCheckpoint, UnusedBrokenShardIsNeverRead) {
  TempDir dir;
  write_sharded(dir.path());
  write_text(dir.path() / kShard2, "garbage");  // shard 2 is broken, shard 1 is fine
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir.path());
  EXPECT_EQ(checkpoint.load("model.layers.0.mlp.gate.weight").numel(), 32);
  const std::string message = io_error_message([&] { (void)checkpoint.view("lm_head.weight"); });
  EXPECT_NE(message.find(kShard2), std::string::npos) << message;
  EXPECT_NE(message.find("file is too short"), std::string::npos) << message;
  EXPECT_EQ(checkpoint.num_open_shards(), 1u);
}

TEST(SafetensorsCheckpoint, MissingShardFailsOnUse) {
  TempDir dir;
  write_sharded(dir.path());
  fs::remove(dir.path() / kShard2);
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir.path());
  const std::string message = io_error_message([&] { (void)checkpoint.load("lm_head.weight"); });
  EXPECT_NE(message.find("cannot open"), std::string::npos) << message;
  EXPECT_NE(message.find(kShard2), std::string::npos) << message;
}

TEST(SafetensorsCheckpoint, IndexPointsToWrongShard) {
  TempDir dir;
  write_sharded(dir.path());
  write_text(dir.path() / kIndex, std::string(R"({"weight_map": {"lm_head.weight": ")") + kShard1 + R"("}})");
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir.path());
  const std::string message = io_error_message([&] { (void)checkpoint.info("lm_head.weight"); });
  EXPECT_NE(message.find("puts tensor 'lm_head.weight' in '" + std::string(kShard1) + "'"), std::string::npos)
      << message;
}

TEST(SafetensorsCheckpoint, CopiesShareShardsAndThreadsAgree) {
  TempDir dir;
  write_sharded(dir.path());
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir.path());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int thread_idx = 0; thread_idx < 4; ++thread_idx) {
    threads.emplace_back([&, thread_idx] {
      const SafetensorsCheckpoint copy = checkpoint;  // NOLINT: exercising copies
      const char* name = thread_idx % 2 ? "lm_head.weight" : "model.layers.1.mlp.gate.weight";
      if (copy.view(name).numel() == 24 || copy.view(name).numel() == 32) ++ok;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 4);
  EXPECT_EQ(checkpoint.num_open_shards(), 1u);
}

TEST(SafetensorsCheckpoint, SingleFile) {
  TempDir dir;
  SafetensorsWriter writer;
  writer.add("a", filled({2}, 5.0f));
  writer.write(dir.path() / "model.safetensors");
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir.path());
  EXPECT_EQ(checkpoint.num_shards(), 1u);
  EXPECT_EQ(checkpoint.num_open_shards(), 1u);
  EXPECT_EQ(checkpoint.names(), std::vector<std::string>{"a"});
  EXPECT_EQ(checkpoint.load("a").data_as<float>()[1], 6.0f);
}

struct BadIndex {
  const char* name;
  std::string json;
  const char* expected;
};

TEST(SafetensorsCheckpoint, MalformedIndex) {
  const std::vector<BadIndex> cases = {
      {"not json", "{", "model.safetensors.index.json: not valid JSON"},
      {"not utf-8", "{\"weight_map\": {\"\xff\": \"a\"}}", "not valid UTF-8"},
      {"array", "[]", "expected a JSON object, got array"},
      {"no weight_map", "{\"metadata\": {}}", "expected a 'weight_map' key"},
      {"weight_map array", "{\"weight_map\": []}",
       "weight_map: expected an object of tensor name -> shard file"},
      {"shard not string", "{\"weight_map\": {\"w\": 3}}",
       "weight_map tensor 'w': expected a shard file name"},
      {"parent dir", "{\"weight_map\": {\"w\": \"../x.safetensors\"}}", "expected a plain file name"},
      {"absolute", "{\"weight_map\": {\"w\": \"/etc/passwd\"}}", "expected a plain file name"},
      {"dot dot", "{\"weight_map\": {\"w\": \"..\"}}", "expected a plain file name"},
      {"empty name", "{\"weight_map\": {\"w\": \"\"}}", "expected a plain file name"},
      {"duplicate tensor", "{\"weight_map\": {\"w\": \"a\", \"w\": \"b\"}}", "has duplicate key 'w'"},
  };
  for (const BadIndex& test : cases) {
    SCOPED_TRACE(test.name);
    TempDir dir;
    write_text(dir.path() / kIndex, test.json);
    const std::string message = io_error_message([&] { (void)SafetensorsCheckpoint::open(dir.path()); });
    EXPECT_NE(message.find(test.expected), std::string::npos) << message;
    EXPECT_NE(message.find(dir.path().string()), std::string::npos) << message;
  }
}

TEST(SafetensorsCheckpoint, NotACheckpoint) {
  TempDir dir;
  std::string message = io_error_message([&] { (void)SafetensorsCheckpoint::open(dir.path()); });
  EXPECT_NE(message.find("expected model.safetensors or model.safetensors.index.json in it"),
            std::string::npos)
      << message;
  message = io_error_message([&] { (void)SafetensorsCheckpoint::open(dir.path() / "absent"); });
  EXPECT_NE(message.find("got nothing there"), std::string::npos) << message;
  write_text(dir.path() / "file", "x");
  message = io_error_message([&] { (void)SafetensorsCheckpoint::open(dir.path() / "file"); });
  EXPECT_NE(message.find("expected a directory"), std::string::npos) << message;
}

fs::path golden_dir() {
#ifdef FUSEDMOE_GOLDEN_DIR
  return fs::path(FUSEDMOE_GOLDEN_DIR);
#else
  return {};
#endif
}

TEST(SafetensorsCheckpointGolden, Qwen3MoeTiny) {
  if (golden_dir().empty()) GTEST_SKIP() << "FUSEDMOE_GOLDEN_DIR is not defined by the build";
  const fs::path directory = golden_dir() / "qwen3moe_tiny";
  if (!fs::is_directory(directory)) GTEST_SKIP() << "golden data missing: " << directory;
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(directory);
  EXPECT_EQ(checkpoint.num_shards(), 1u);
  for (int layer = 0; layer < 2; ++layer) {
    const std::string prefix = "model.layers." + std::to_string(layer) + ".mlp.";
    const SafetensorsTensorInfo& gate = checkpoint.info(prefix + "gate.weight");
    EXPECT_EQ(gate.dtype, DType::fp32);
    EXPECT_EQ(gate.shape, (std::vector<std::int64_t>{8, 128}));
    for (int expert = 0; expert < 8; ++expert) {
      const std::string expert_prefix = prefix + "experts." + std::to_string(expert) + ".";
      EXPECT_EQ(checkpoint.info(expert_prefix + "gate_proj.weight").shape,
                (std::vector<std::int64_t>{64, 128}));
      EXPECT_EQ(checkpoint.info(expert_prefix + "up_proj.weight").shape,
                (std::vector<std::int64_t>{64, 128}));
      EXPECT_EQ(checkpoint.info(expert_prefix + "down_proj.weight").shape,
                (std::vector<std::int64_t>{128, 64}));
    }
  }
  const Tensor down = checkpoint.load_as("model.layers.1.mlp.experts.7.down_proj.weight", DType::bf16);
  EXPECT_EQ(down.dtype(), DType::bf16);
  const TensorView original = checkpoint.view("model.layers.1.mlp.experts.7.down_proj.weight");
  for (std::int64_t index = 0; index < original.numel(); ++index) {
    ASSERT_EQ(down.data_as<std::uint16_t>()[index], float_to_bf16(original.data_as<float>()[index])) << index;
  }
  EXPECT_EQ(checkpoint.file_of("lm_head.weight").metadata().at("format"), "pt");
}

TEST(SafetensorsCheckpointGolden, Qwen3MoeTinyIo) {
  if (golden_dir().empty()) GTEST_SKIP() << "FUSEDMOE_GOLDEN_DIR is not defined by the build";
  const fs::path path = golden_dir() / "qwen3moe_tiny_io.safetensors";
  if (!fs::exists(path)) GTEST_SKIP() << "golden data missing: " << path;
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.info("layers.0.mlp.input").shape, (std::vector<std::int64_t>{11, 128}));
  EXPECT_EQ(file.info("logits").shape, (std::vector<std::int64_t>{1, 11, 512}));
  const Tensor ids = file.load("layers.1.mlp.router_topk_ids");
  for (std::int64_t index = 0; index < ids.numel(); ++index) {
    EXPECT_GE(ids.data_as<std::int64_t>()[index], 0);
    EXPECT_LT(ids.data_as<std::int64_t>()[index], 8);
  }
}

}  // namespace
}  // namespace fusedmoe
