// `fusedmoe run` file to file, as other tools script it: golden HF inputs in, safetensors out.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "check/compare.hpp"
#include "fusedmoe/safetensors.hpp"

namespace fusedmoe {
namespace {

namespace fs = std::filesystem;
const fs::path kGolden = FUSEDMOE_GOLDEN_DIR;

int run_cli(const std::string& arguments) {
  const std::string command = std::string(FUSEDMOE_CLI_PATH) + " " + arguments + " > /dev/null";
  return std::system(command.c_str());
}

// Runs the CLI expecting it to fail with a message containing `fragment` (stderr captured in a file).
void expect_cli_error(const std::string& arguments, const std::string& fragment, const fs::path& scratch) {
  const fs::path log = scratch / "stderr.txt";
  const std::string command =
      std::string(FUSEDMOE_CLI_PATH) + " " + arguments + " > /dev/null 2> " + log.string();
  EXPECT_NE(0, std::system(command.c_str())) << arguments;
  std::ifstream file(log);
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find(fragment), std::string::npos) << arguments << ": " << text;
}

struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("fusedmoe_cli_" + std::to_string(::getpid()));
  Scratch() { fs::create_directories(dir); }
  ~Scratch() { fs::remove_all(dir); }
};

TEST(CliRunFiles, BlockFileToFileMatchesTransformers) {
  if (!fs::exists(kGolden)) GTEST_SKIP() << "golden data not found at " << kGolden;
  Scratch scratch;
  for (const std::string name : {"qwen3moe_block", "dsv3_block", "qwen2moe_block"}) {
    const SafetensorsFile golden = SafetensorsFile::open(kGolden / (name + "_fp32.safetensors"));
    SafetensorsWriter input;
    input.add("hidden_states", golden.load("io.input"));
    input.write(scratch.dir / "in.safetensors");
    for (const char* dtype : {"fp32", "bf16"}) {
      SCOPED_TRACE(name + " " + dtype);
      const fs::path out = scratch.dir / (name + dtype + ".safetensors");
      ASSERT_EQ(0, run_cli("run --block " + (kGolden / (name + "_bf16.safetensors")).string() + " --config " +
                           (kGolden / (name + ".json")).string() + " --input " +
                           (scratch.dir / "in.safetensors").string() + " --output " + out.string() +
                           " --dtype " + dtype + " --repeats 0"));
      const SafetensorsFile result = SafetensorsFile::open(out);
      const Tensor truth = golden.load("io.output");
      const std::vector<double> reference(truth.data_as<float>(), truth.data_as<float>() + truth.numel());
      EXPECT_LT(compare_to_reference(result.view("output"), reference).relative_error,
                std::string(dtype) == "fp32" ? 1e-5 : 1e-2);
      EXPECT_EQ(result.info("topk_ids").dtype, DType::int32);
      EXPECT_EQ(result.info("topk_weights").dtype, DType::fp32);
      EXPECT_EQ(result.info("topk_ids").shape, golden.info("io.gate_out2").shape);
    }
  }
}

TEST(CliRunFiles, CheckpointLayerAndClearErrors) {
  if (!fs::exists(kGolden / "qwen3moe_tiny")) GTEST_SKIP() << "golden checkpoint not found";
  Scratch scratch;
  const std::string checkpoint = (kGolden / "qwen3moe_tiny").string();
  EXPECT_EQ(0, run_cli("run --checkpoint " + checkpoint + " --layer 1 --tokens 5 --dtype fp32 --output " +
                       (scratch.dir / "o.safetensors").string()));
  EXPECT_EQ(SafetensorsFile::open(scratch.dir / "o.safetensors").info("output").shape,
            (std::vector<std::int64_t>{5, 128}));
  expect_cli_error("run --checkpoint " + checkpoint + " --layer 7",
                   "layer 7: expected 0 <= layer < num_hidden_layers = 2", scratch.dir);
  expect_cli_error("run --checkpoint " + checkpoint, "--checkpoint needs --layer L", scratch.dir);
  expect_cli_error("run --checkpoint /nonexistent --layer 0", "'/nonexistent' has no config.json",
                   scratch.dir);
  EXPECT_EQ(0, run_cli("inspect --checkpoint " + checkpoint));
}

}  // namespace
}  // namespace fusedmoe
