// Packing canonical bf16 weights into panels (once, after loading). Two layouts of the same size:
// - widen (shift/mask): per k, lane j = (column j | column j + 16 << 16), for fp32-FMA kernels;
// - pairs (VNNI): per pair of k, lanes 0-15 = (k | k + 1 << 16) of columns 0-15, lanes 16-31 of columns
// 16-31,
//   for the bf16 dot-product instruction (vdpbf16ps). Depth is padded to even.
#include "backends/cpu_prepacked/prepacked_experts.hpp"
#include "core/check.hpp"
#include "core/tensor_checks.hpp"
#include "core/threading.hpp"

namespace fusedmoe::prepacked {

namespace {
std::int64_t round_up(std::int64_t value, std::int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}
std::uint32_t lane(std::uint16_t low, std::uint16_t high) {
  return static_cast<std::uint32_t>(low) | (static_cast<std::uint32_t>(high) << 16);
}

// Writes one panel: `weight(k, c)` for k < depth, c < 32 (zero outside the matrix).
template <class Weight>
void pack_panel(std::uint32_t* panel, std::int64_t depth, PanelLayout layout, Weight&& weight) {
  if (layout == PanelLayout::widen) {
    for (std::int64_t j = 0; j < 16; ++j) {
      for (std::int64_t k = 0; k < depth; ++k) panel[k * 16 + j] = lane(weight(k, j), weight(k, j + 16));
    }
    return;
  }
  for (std::int64_t c = 0; c < kPanelWidth; ++c) {
    for (std::int64_t pair = 0; pair < depth / 2; ++pair) {
      panel[pair * kPanelWidth + c] = lane(weight(2 * pair, c), weight(2 * pair + 1, c));
    }
  }
}
}  // namespace

const std::uint32_t* PrepackedWeights::w13_panel(std::int64_t expert, std::int64_t block) const {
  return w13_panels.data_as<const std::uint32_t>() +
         ((expert * (intermediate_padded / 16) + block) * hidden_depth) * 16;
}

const std::uint32_t* PrepackedWeights::w2_panel(std::int64_t expert, std::int64_t block) const {
  return w2_panels.data_as<const std::uint32_t>() +
         ((expert * (hidden_padded / kPanelWidth) + block) * intermediate_padded) * 16;
}

std::shared_ptr<const ExpertWeights> pack_weights(const Tensor& w13, const Tensor& w2,
                                                  const MoeConfig& config, PanelLayout layout) {
  FUSEDMOE_CHECK(w13.dtype() == DType::bf16 && w2.dtype() == DType::bf16 && w13.device().is_cpu(),
                 "[cpu_prepacked] packs bf16 CPU weights, got ", w13.describe(), " and ", w2.describe());
  check_canonical_expert_weights("cpu_prepacked", w13, w2, config, Device::cpu());
  auto packed = std::make_shared<PrepackedWeights>();
  const std::int64_t experts = w13.size(0), hidden = config.hidden_size,
                     intermediate = config.intermediate_size;
  packed->layout = layout;
  packed->num_experts = experts;
  packed->hidden = hidden;
  packed->hidden_depth = layout == PanelLayout::pairs ? round_up(hidden, 2) : hidden;
  packed->intermediate = intermediate;
  packed->intermediate_padded = round_up(intermediate, 16);
  packed->hidden_padded = round_up(hidden, kPanelWidth);
  const std::int64_t blocks13 = packed->intermediate_padded / 16,
                     blocks2 = packed->hidden_padded / kPanelWidth;
  packed->w13_panels = Tensor::empty(DType::int32, {experts * blocks13, packed->hidden_depth, 16});
  packed->w2_panels = Tensor::empty(DType::int32, {experts * blocks2, packed->intermediate_padded, 16});
  const auto* source13 = w13.data_as<const std::uint16_t>();
  const auto* source2 = w2.data_as<const std::uint16_t>();
  parallel_for_dynamic(experts * blocks13, resolve_num_threads({}), [&](std::int64_t task) {
    const std::int64_t expert = task / blocks13, block = task % blocks13;
    // Panel column c < 16: gate column 16 * block + c; c >= 16: the matching up column.
    pack_panel(const_cast<std::uint32_t*>(packed->w13_panel(expert, block)), packed->hidden_depth, layout,
               [&](std::int64_t k, std::int64_t c) -> std::uint16_t {
                 const std::int64_t column = block * 16 + (c % 16);
                 if (column >= intermediate || k >= hidden) return 0;
                 const std::int64_t row = (c < 16 ? 0 : intermediate) + column;
                 return source13[(expert * 2 * intermediate + row) * hidden + k];
               });
  });
  parallel_for_dynamic(experts * blocks2, resolve_num_threads({}), [&](std::int64_t task) {
    const std::int64_t expert = task / blocks2, block = task % blocks2;
    pack_panel(const_cast<std::uint32_t*>(packed->w2_panel(expert, block)), packed->intermediate_padded,
               layout, [&](std::int64_t k, std::int64_t c) -> std::uint16_t {
                 const std::int64_t column = block * kPanelWidth + c;
                 return column < hidden && k < intermediate
                            ? source2[(expert * hidden + column) * intermediate + k]
                            : 0;
               });
  });
  return packed;
}

}  // namespace fusedmoe::prepacked
