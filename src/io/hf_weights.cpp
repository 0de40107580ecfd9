// Loading one MoE block's tensors (from a checkpoint layer or a block file) into canonical MoeWeights,
// strictly: every tensor the config implies must be there with the right shape, and nothing else.
#include <algorithm>
#include <fstream>
#include <set>

#include "core/check.hpp"
#include "fusedmoe/hf.hpp"
#include "fusedmoe/safetensors.hpp"
#include "io/hf_family.hpp"

namespace fusedmoe {

namespace {

using io::HfModelSpec;

// Either a whole checkpoint or one file: what the loader needs from both.
struct TensorSource {
  std::function<bool(const std::string&)> contains;
  std::function<const SafetensorsTensorInfo&(const std::string&)> info;
  std::function<Tensor(const std::string&, DType)> load_as;
  std::vector<std::string> names;
  std::string label;  // for messages
};

std::string shape_text(std::span<const std::int64_t> shape) {
  std::string text;
  for (std::int64_t size : shape) append_joined(text, ", ", std::to_string(size));
  return "[" + text + "]";
}

class BlockLoader {
 public:
  BlockLoader(const TensorSource& source, std::string prefix, const HfModelSpec& spec, DType dtype,
              bool check_declared_dtype)
      : source_(source),
        prefix_(std::move(prefix)),
        spec_(spec),
        dtype_(dtype),
        check_declared_dtype_(check_declared_dtype) {}

  MoeWeights load() {
    const MoeConfig& moe = spec_.moe;
    const std::int64_t experts = moe.num_experts, hidden = moe.hidden_size,
                       intermediate = moe.intermediate_size;
    MoeWeights weights;
    weights.router_gate = take("gate.weight", {experts, hidden}, DType::fp32, false);
    if (moe.routing.use_correction_bias) {
      weights.correction_bias = take("gate.e_score_correction_bias", {experts}, DType::fp32, false);
    }
    if (source_.contains(prefix_ + "experts.gate_up_proj")) {  // fused layout (transformers >= 5 in memory)
      weights.w13 = take("experts.gate_up_proj", {experts, 2 * intermediate, hidden}, dtype_, true);
      weights.w2 = take("experts.down_proj", {experts, hidden, intermediate}, dtype_, true);
    } else {
      weights.w13 = Tensor::empty(dtype_, {experts, 2 * intermediate, hidden});
      weights.w2 = Tensor::empty(dtype_, {experts, hidden, intermediate});
      const TensorView w13_rows = weights.w13.view().reshape({experts * 2 * intermediate, hidden});
      for (std::int64_t expert = 0; expert < experts; ++expert) {
        const std::string base = str_cat("experts.", expert, ".");
        copy_tensor(take(base + spec_.gate_name + ".weight", {intermediate, hidden}, dtype_, true),
                    w13_rows.slice_rows(2 * expert * intermediate, (2 * expert + 1) * intermediate));
        copy_tensor(take(base + spec_.up_name + ".weight", {intermediate, hidden}, dtype_, true),
                    w13_rows.slice_rows((2 * expert + 1) * intermediate, (2 * expert + 2) * intermediate));
        const TensorView down = weights.w2.view().reshape({experts * hidden, intermediate});
        copy_tensor(take(base + spec_.down_name + ".weight", {hidden, intermediate}, dtype_, true),
                    down.slice_rows(expert * hidden, (expert + 1) * hidden));
      }
    }
    if (moe.shared.count > 0) {
      const std::int64_t shared = moe.shared.intermediate_size;
      weights.shared_w13 = Tensor::empty(dtype_, {1, 2 * shared, hidden});
      const TensorView rows = weights.shared_w13.view().reshape({2 * shared, hidden});
      copy_tensor(take(spec_.shared_prefix + "gate_proj.weight", {shared, hidden}, dtype_, true),
                  rows.slice_rows(0, shared));
      copy_tensor(take(spec_.shared_prefix + "up_proj.weight", {shared, hidden}, dtype_, true),
                  rows.slice_rows(shared, 2 * shared));
      weights.shared_w2 = Tensor::empty(dtype_, {1, hidden, shared});
      copy_tensor(take(spec_.shared_prefix + "down_proj.weight", {hidden, shared}, dtype_, true),
                  weights.shared_w2.view().reshape({hidden, shared}));
      if (spec_.shared_gate)
        weights.shared_gate = take("shared_expert_gate.weight", {1, hidden}, DType::fp32, false);
    }
    check_nothing_left();
    return weights;
  }

 private:
  // Loads prefix + name, checking its shape (and, for expert weights, the dtype config.json declares).
  Tensor take(const std::string& name, std::initializer_list<std::int64_t> shape, DType dtype,
              bool expert_weight) {
    const std::string full = prefix_ + name;
    if (!source_.contains(full)) {
      throw IoError(str_cat("[hf] ", source_.label, ": tensor '", full, "' is missing (expected ",
                            shape_text(shape), " for ", io::family_name(spec_.family), " with ",
                            spec_.moe.describe(), ")"));
    }
    const SafetensorsTensorInfo& info = source_.info(full);
    const std::vector<std::int64_t> expected(shape);
    if (info.shape != expected) {
      throw IoError(str_cat("[hf] ", source_.label, ": tensor '", full, "' shape ", shape_text(info.shape),
                            ": expected ", shape_text(expected), " from config.json"));
    }
    if (!is_floating(info.dtype)) {
      throw IoError(str_cat("[hf] ", source_.label, ": tensor '", full, "' dtype ", to_string(info.dtype),
                            ": expected a floating dtype (F32, F16 or BF16)"));
    }
    if (expert_weight && check_declared_dtype_ && !spec_.torch_dtype.empty()) {
      const DType declared = parse_dtype(spec_.torch_dtype);
      if (info.dtype != declared) {
        throw IoError(str_cat("[hf] ", source_.label, ": tensor '", full, "' dtype ", to_string(info.dtype),
                              ": config.json declares ", spec_.torch_dtype));
      }
    }
    consumed_.insert(full);
    return source_.load_as(full, dtype);
  }

  void check_nothing_left() const {
    for (const std::string& name : source_.names) {
      if (!name.starts_with(prefix_) || consumed_.count(name)) continue;
      if (prefix_.empty() && name.starts_with("io.")) continue;  // recorded inputs/outputs beside a block
      throw IoError(str_cat("[hf] ", source_.label, ": unexpected tensor '", name, "' in the MoE block (",
                            io::family_name(spec_.family), " with ", spec_.moe.describe(),
                            "): ", unexpected_tensor_hint(name)));
    }
  }

  // Which config.json field most likely disagrees with the checkpoint, from the tensor's name.
  std::string unexpected_tensor_hint(std::string_view name) const {
    if (name.find("shared_expert") != std::string_view::npos) {
      return spec_.moe.shared.count == 0
                 ? "config.json declares no shared experts (shared_expert_intermediate_size or "
                   "n_shared_experts)"
                 : "the shared experts' tensors are not named as this family names them";
    }
    if (name.find("experts.") != std::string_view::npos) {
      return str_cat("is the expert count in config.json (", spec_.moe.num_experts, ") right?");
    }
    return "not part of this family's MoE block: is model_type in config.json right?";
  }

  const TensorSource& source_;
  std::string prefix_;
  const HfModelSpec& spec_;
  DType dtype_;
  bool check_declared_dtype_;
  std::set<std::string, std::less<>> consumed_;
};

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream stream(path);
  if (!stream) throw IoError(str_cat("[hf] cannot open '", path.string(), "'"));
  try {
    return nlohmann::json::parse(stream);
  } catch (const nlohmann::json::exception& error) {
    throw IoError(str_cat("[hf] '", path.string(), "' is not valid JSON: ", error.what()));
  }
}

MoeConfig config_for(const HfModelSpec& spec, DType dtype) {
  MoeConfig config = spec.moe;
  config.act_dtype = config.weight_dtype = dtype;
  config.validate();
  return config;
}

}  // namespace

struct HfCheckpoint::Impl {
  std::filesystem::path directory;
  HfModelSpec spec;
  SafetensorsCheckpoint checkpoint;
  TensorSource source;
};

HfCheckpoint::HfCheckpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HfCheckpoint::~HfCheckpoint() = default;
HfCheckpoint::HfCheckpoint(HfCheckpoint&&) noexcept = default;
HfCheckpoint& HfCheckpoint::operator=(HfCheckpoint&&) noexcept = default;

HfCheckpoint HfCheckpoint::open(const std::filesystem::path& directory) {
  const std::filesystem::path config_path = directory / "config.json";
  if (!std::filesystem::exists(config_path)) {
    throw IoError(str_cat("[hf] '", directory.string(),
                          "' has no config.json: expected a Hugging Face checkpoint directory"));
  }
  auto impl =
      std::unique_ptr<Impl>(new Impl{directory,
                                     io::parse_hf_config(read_json(config_path), config_path.string()),
                                     SafetensorsCheckpoint::open(directory),
                                     {}});
  const SafetensorsCheckpoint* checkpoint = &impl->checkpoint;
  impl->source.contains = [checkpoint](const std::string& name) { return checkpoint->contains(name); };
  impl->source.info = [checkpoint](const std::string& name) -> const SafetensorsTensorInfo& {
    return checkpoint->info(name);
  };
  impl->source.load_as = [checkpoint](const std::string& name, DType dtype) {
    return checkpoint->load_as(name, dtype);
  };
  impl->source.names = checkpoint->names();
  impl->source.label = directory.string();
  return HfCheckpoint(std::move(impl));
}

const std::string& HfCheckpoint::architecture() const {
  return impl_->spec.architecture;
}
const std::string& HfCheckpoint::model_type() const {
  return impl_->spec.model_type;
}
int HfCheckpoint::num_layers() const {
  return impl_->spec.num_layers;
}

std::vector<HfLayerInfo> HfCheckpoint::layers() const {
  std::vector<HfLayerInfo> list;
  for (int index = 0; index < impl_->spec.num_layers; ++index) {
    const std::string reason = io::dense_reason(impl_->spec, index);
    list.push_back({index, reason.empty(), reason});
  }
  return list;
}

MoeConfig HfCheckpoint::moe_config(int layer, DType dtype) const {
  const HfModelSpec& spec = impl_->spec;
  FUSEDMOE_CHECK(layer >= 0 && layer < spec.num_layers, "[hf] layer ", layer, ": expected 0 <= layer < ",
                 "num_hidden_layers = ", spec.num_layers);
  const std::string reason = io::dense_reason(spec, layer);
  FUSEDMOE_CHECK(reason.empty(), "[hf] layer ", layer, " of ", spec.architecture,
                 " is a dense MLP, not MoE: ", reason);
  return config_for(spec, dtype);
}

MoeWeights HfCheckpoint::load_moe_weights(int layer, DType dtype) const {
  moe_config(layer, dtype);  // validates the layer
  BlockLoader loader(impl_->source, str_cat("model.layers.", layer, ".", impl_->spec.block_prefix),
                     impl_->spec, dtype, true);
  return loader.load();
}

HfBlock load_hf_block(const std::filesystem::path& block_file, const std::filesystem::path& config_file,
                      DType dtype) {
  nlohmann::json config = read_json(config_file);
  if (config.is_object() && !config.contains("model_type") && config.contains("config"))
    config = config["config"];
  const HfModelSpec spec = io::parse_hf_config(config, config_file.string());
  const SafetensorsFile file = SafetensorsFile::open(block_file);
  TensorSource source;
  source.contains = [&file](const std::string& name) { return file.contains(name); };
  source.info = [&file](const std::string& name) -> const SafetensorsTensorInfo& { return file.info(name); };
  source.load_as = [&file](const std::string& name, DType as) { return file.load_as(name, as); };
  source.names = file.names();
  source.label = block_file.string();
  HfBlock block{config_for(spec, dtype), {}};
  block.weights = BlockLoader(source, "", spec, dtype, false).load();
  return block;
}

}  // namespace fusedmoe
