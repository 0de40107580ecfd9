// The fast CPU backends' packed layouts: packing is exact (unpacking gives the canonical weights back, zero
// padding included), for both layouts and for sizes that are no multiple of the panel widths.
#include <gtest/gtest.h>

#include "backends/cpu_prepacked/prepacked_experts.hpp"
#include "testing/moe_case.hpp"

namespace fusedmoe {
namespace {

using prepacked::kPanelWidth;
using prepacked::PanelLayout;
using prepacked::PrepackedWeights;

// Entry (k, c) of a packed panel (c < 32), as the README documents each layout.
std::uint16_t panel_entry(const std::uint32_t* panel, PanelLayout layout, std::int64_t k, std::int64_t c) {
  if (layout == PanelLayout::widen) {
    const std::uint32_t lane = panel[k * 16 + (c % 16)];
    return static_cast<std::uint16_t>(c < 16 ? lane & 0xffff : lane >> 16);
  }
  const std::uint32_t lane = panel[(k / 2) * kPanelWidth + c];
  return static_cast<std::uint16_t>(k % 2 == 0 ? lane & 0xffff : lane >> 16);
}

class PrepackedRoundTrip : public ::testing::TestWithParam<PanelLayout> {};

TEST_P(PrepackedRoundTrip, UnpackingGivesTheCanonicalWeightsBack) {
  const PanelLayout layout = GetParam();
  for (const auto& [hidden, intermediate] :
       {std::pair<std::int64_t, std::int64_t>{64, 32}, {67, 29}, {33, 17}}) {
    SCOPED_TRACE("H=" + std::to_string(hidden) + " I=" + std::to_string(intermediate));
    const MoeConfig config = testing::make_config(3, 2, hidden, intermediate);
    const MoeWeights weights = random_weights(config, 5);
    const auto converted = prepacked::pack_weights(weights.w13, weights.w2, config, layout);
    const auto& packed = dynamic_cast<const PrepackedWeights&>(*converted);
    // The loops below take their bounds from the packed weights: they must cover the canonical ones.
    ASSERT_GE(packed.intermediate_padded, intermediate);
    ASSERT_GE(packed.hidden_depth, hidden);
    ASSERT_GE(packed.hidden_padded, hidden);
    const auto* w13 = weights.w13.data_as<const std::uint16_t>();
    const auto* w2 = weights.w2.data_as<const std::uint16_t>();
    for (std::int64_t e = 0; e < 3; ++e) {
      for (std::int64_t block = 0; block < packed.intermediate_padded / 16; ++block) {
        const std::uint32_t* panel = packed.w13_panel(e, block);
        for (std::int64_t k = 0; k < packed.hidden_depth; ++k) {
          for (std::int64_t c = 0; c < kPanelWidth; ++c) {
            const std::int64_t column = block * 16 + c % 16;
            const bool inside = column < intermediate && k < hidden;
            const std::int64_t row = (c < 16 ? 0 : intermediate) + column;
            const std::uint16_t expected = inside ? w13[(e * 2 * intermediate + row) * hidden + k] : 0;
            ASSERT_EQ(panel_entry(panel, layout, k, c), expected) << "w13 e" << e << " k" << k << " c" << c;
          }
        }
      }
      for (std::int64_t block = 0; block < packed.hidden_padded / kPanelWidth; ++block) {
        const std::uint32_t* panel = packed.w2_panel(e, block);
        for (std::int64_t k = 0; k < packed.intermediate_padded; ++k) {
          for (std::int64_t c = 0; c < kPanelWidth; ++c) {
            const std::int64_t column = block * kPanelWidth + c;
            const std::uint16_t expected =
                column < hidden && k < intermediate ? w2[(e * hidden + column) * intermediate + k] : 0;
            ASSERT_EQ(panel_entry(panel, layout, k, c), expected) << "w2 e" << e << " k" << k << " c" << c;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, PrepackedRoundTrip,
                         ::testing::Values(PanelLayout::widen, PanelLayout::pairs), [](const auto& info) {
                           return info.param == PanelLayout::widen ? "widen" : "pairs";
                         });

}  // namespace
}  // namespace fusedmoe
