// Runs once per layer (finalize_weights): canonical bf16 expert weights -> oneDNN's prepacked layout.
#include "backends/cpu_onednn_grouped/experts.hpp"
#include "core/check.hpp"
#include "core/tensor_checks.hpp"

namespace fusedmoe {

namespace {

// Reorders every expert's [N, K] row-major matrix (the canonical layout, i.e. [K, N] in format "ba")
// into `packed` ([E, bytes]) in `layout`.
void reorder_experts(const Tensor& canonical, std::int64_t k, std::int64_t n,
                     const dnnl::memory::desc& layout, const Tensor& packed) {
  const dnnl::engine& engine = onednn_cpu_engine();
  dnnl::stream stream(engine);
  const dnnl::memory::desc plain({k, n}, dnnl::memory::data_type::bf16, dnnl::memory::format_tag::ba);
  const dnnl::reorder reorder(dnnl::reorder::primitive_desc(engine, plain, engine, layout));
  const std::int64_t experts = canonical.size(0);
  const std::size_t plain_bytes = static_cast<std::size_t>(k * n) * sizeof(std::uint16_t);
  const std::size_t packed_bytes = layout.get_size();
  for (std::int64_t expert = 0; expert < experts; ++expert) {
    dnnl::memory source(plain, engine, static_cast<char*>(canonical.data()) + expert * plain_bytes);
    dnnl::memory destination(layout, engine, static_cast<char*>(packed.data()) + expert * packed_bytes);
    reorder.execute(stream, source, destination);
  }
  stream.wait();
}

}  // namespace

OneDnnGroupedWeights::OneDnnGroupedWeights(std::int64_t num_local_experts, std::int64_t hidden_size,
                                           std::int64_t intermediate_size)
    : num_local_experts(num_local_experts), hidden_size(hidden_size), intermediate_size(intermediate_size) {}

const void* OneDnnGroupedWeights::w13_of(std::int64_t expert) const {
  return static_cast<const char*>(w13.data()) + expert * w13.size(1);
}

const void* OneDnnGroupedWeights::w2_of(std::int64_t expert) const {
  return static_cast<const char*>(w2.data()) + expert * w2.size(1);
}

std::shared_ptr<const ExpertWeights> onednn_grouped_convert_weights(const Tensor& w13, const Tensor& w2,
                                                                    const MoeConfig& config) {
  constexpr std::string_view kComponent = kOneDnnGroupedId;
  const std::int64_t experts = config.num_local_experts();
  const std::int64_t hidden = config.hidden_size;
  const std::int64_t intermediate = config.intermediate_size;
  check_device(kComponent, "w13", w13, Device::cpu());
  check_device(kComponent, "w2", w2, Device::cpu());
  check_dtype(kComponent, "w13", w13, {DType::bf16});
  check_dtype(kComponent, "w2", w2, {DType::bf16});
  check_shape(kComponent, "w13", w13, {experts, 2 * intermediate, hidden});
  check_shape(kComponent, "w2", w2, {experts, hidden, intermediate});

  auto converted = std::make_shared<OneDnnGroupedWeights>(experts, hidden, intermediate);
  try {
    converted->w13_desc = preferred_weights_desc(hidden, 2 * intermediate);
    converted->w2_desc = preferred_weights_desc(intermediate, hidden);
    converted->w13 =
        Tensor::empty(DType::uint8, {experts, static_cast<std::int64_t>(converted->w13_desc.get_size())});
    converted->w2 =
        Tensor::empty(DType::uint8, {experts, static_cast<std::int64_t>(converted->w2_desc.get_size())});
    reorder_experts(w13, hidden, 2 * intermediate, converted->w13_desc, converted->w13);
    reorder_experts(w2, intermediate, hidden, converted->w2_desc, converted->w2);
  } catch (const dnnl::error& error) {
    rethrow_onednn_error(error, "reordering the expert weights");
  }
  return converted;
}

}  // namespace fusedmoe
