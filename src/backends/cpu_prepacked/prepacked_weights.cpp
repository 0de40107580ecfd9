// Packing canonical bf16 weights into panels (once, after loading).
#include "backends/cpu_prepacked/prepacked_experts.hpp"
#include "core/check.hpp"
#include "core/threading.hpp"

namespace fusedmoe::prepacked {

namespace {
std::int64_t round_up(std::int64_t value, std::int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }
}  // namespace

const std::uint32_t* PrepackedWeights::w13_panel(std::int64_t expert, std::int64_t block) const {
  return w13_panels.data_as<const std::uint32_t>() + ((expert * (intermediate_padded / 16) + block) * hidden) * 16;
}

const std::uint32_t* PrepackedWeights::w2_panel(std::int64_t expert, std::int64_t block) const {
  return w2_panels.data_as<const std::uint32_t>() +
         ((expert * (hidden_padded / kPanelWidth) + block) * intermediate_padded) * 16;
}

std::shared_ptr<const ExpertWeights> pack_weights(const Tensor& w13, const Tensor& w2, const MoeConfig& config) {
  FUSEDMOE_CHECK(w13.dtype() == DType::bf16 && w2.dtype() == DType::bf16 && w13.device().is_cpu(),
                 "[cpu_prepacked] packs bf16 CPU weights, got ", w13.describe(), " and ", w2.describe());
  auto packed = std::make_shared<PrepackedWeights>();
  const std::int64_t experts = w13.size(0), hidden = config.hidden_size, intermediate = config.intermediate_size;
  packed->num_experts = experts;
  packed->hidden = hidden;
  packed->intermediate = intermediate;
  packed->intermediate_padded = round_up(intermediate, 16);
  packed->hidden_padded = round_up(hidden, kPanelWidth);
  const std::int64_t blocks13 = packed->intermediate_padded / 16, blocks2 = packed->hidden_padded / kPanelWidth;
  packed->w13_panels = Tensor::empty(DType::int32, {experts * blocks13, hidden, 16});
  packed->w2_panels = Tensor::empty(DType::int32, {experts * blocks2, packed->intermediate_padded, 16});
  const auto* source13 = w13.data_as<const std::uint16_t>();
  const auto* source2 = w2.data_as<const std::uint16_t>();
  auto lane = [](std::uint16_t low, std::uint16_t high) {
    return static_cast<std::uint32_t>(low) | (static_cast<std::uint32_t>(high) << 16);
  };
  parallel_for_dynamic(experts * blocks13, resolve_num_threads({}), [&](std::int64_t task) {
    const std::int64_t expert = task / blocks13, block = task % blocks13;
    auto* panel = const_cast<std::uint32_t*>(packed->w13_panel(expert, block));
    for (std::int64_t j = 0; j < 16; ++j) {  // source rows read sequentially
      for (std::int64_t k = 0; k < hidden; ++k) {
        const std::int64_t column = block * 16 + j;
        const bool valid = column < intermediate;
        const std::uint16_t gate = valid ? source13[(expert * 2 * intermediate + column) * hidden + k] : 0;
        const std::uint16_t up = valid ? source13[(expert * 2 * intermediate + intermediate + column) * hidden + k] : 0;
        panel[k * 16 + j] = lane(gate, up);
      }
    }
  });
  parallel_for_dynamic(experts * blocks2, resolve_num_threads({}), [&](std::int64_t task) {
    const std::int64_t expert = task / blocks2, block = task % blocks2;
    auto* panel = const_cast<std::uint32_t*>(packed->w2_panel(expert, block));
    for (std::int64_t j = 0; j < 16; ++j) {
      for (std::int64_t k = 0; k < packed->intermediate_padded; ++k) {
        const std::int64_t low_column = block * kPanelWidth + j, high_column = low_column + 16;
        auto weight = [&](std::int64_t column) -> std::uint16_t {
          return column < hidden && k < intermediate ? source2[(expert * hidden + column) * intermediate + k] : 0;
        };
        panel[k * 16 + j] = lane(weight(low_column), weight(high_column));
      }
    }
  });
  return packed;
}

}  // namespace fusedmoe::prepacked
