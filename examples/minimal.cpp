// The smallest complete use of fusedmoe: hold a layer, give it weights, finalize, run.
// Built against the installed package by the test `package.find_package` (see tests/package/).
#include <fusedmoe/fusedmoe.hpp>
#include <iostream>

int main() {
  using namespace fusedmoe;
  const MoeConfig config{.num_experts = 8,
                         .hidden_size = 64,
                         .intermediate_size = 32,
                         .routing = {.recipe = RoutingRecipe::softmax_topk_renorm, .top_k = 2}};
  auto filled = [](DType dtype, std::initializer_list<std::int64_t> shape, float value) {
    Tensor tensor = Tensor::empty(dtype, shape);
    for (std::int64_t i = 0; i < tensor.numel(); ++i) {
      const float v = value * static_cast<float>((i * 37) % 11 - 5);
      if (dtype == DType::fp32) {
        tensor.data_as<float>()[i] = v;
      } else {
        tensor.data_as<std::uint16_t>()[i] = float_to_bf16(v);
      }
    }
    return tensor;
  };
  FusedMoeLayer layer(config);
  layer.set_weights({.router_gate = filled(DType::fp32, {8, 64}, 0.01f),
                     .w13 = filled(DType::bf16, {8, 64, 64}, 0.02f),
                     .w2 = filled(DType::bf16, {8, 64, 32}, 0.02f)});
  layer.finalize_weights();
  const Tensor hidden = filled(DType::bf16, {4, 64}, 0.1f);
  const Tensor out = Tensor::empty(DType::bf16, {4, 64});
  layer.forward(hidden, out);
  std::cout << "backend " << layer.selection().backend->id
            << ", out[0] = " << bf16_to_float(out.data_as<std::uint16_t>()[0]) << "\n";
  return 0;
}
