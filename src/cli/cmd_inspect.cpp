// `fusedmoe inspect`: what a Hugging Face checkpoint holds: family, MoE config, and which layers are dense.
#include <iostream>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "fusedmoe/hf.hpp"

namespace fusedmoe::cli {

void add_inspect_command(CLI::App& app) {
  auto directory = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  CLI::App* command =
      app.add_subcommand("inspect", "Show a Hugging Face checkpoint's MoE layers and dense layers");
  command->add_option("--checkpoint", *directory, "Checkpoint directory (config.json + safetensors)")
      ->required();
  command->add_flag("--json", *json, "One JSON object per layer");
  command->callback([directory, json] {
    const HfCheckpoint checkpoint = HfCheckpoint::open(*directory);
    if (!*json)
      std::cout << "architecture: " << checkpoint.architecture() << " (" << checkpoint.model_type() << ")\n";
    for (const HfLayerInfo& layer : checkpoint.layers()) {
      const std::string description =
          layer.is_moe ? checkpoint.moe_config(layer.index, DType::bf16).describe() : layer.dense_reason;
      if (*json) {
        print_json_line({{"layer", layer.index}, {"moe", layer.is_moe}, {"description", description}});
      } else {
        std::cout << "  layer " << layer.index << ": " << (layer.is_moe ? "MoE  " : "dense ") << description
                  << "\n";
      }
    }
  });
}

}  // namespace fusedmoe::cli
