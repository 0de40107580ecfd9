#include "core/tensor_checks.hpp"

#include "core/check.hpp"

namespace fusedmoe {

void check_defined(std::string_view component, std::string_view name, const TensorView& tensor) {
  FUSEDMOE_CHECK(tensor.defined(), "[", component, "] ", name, ": expected a tensor, got an undefined one");
}

void check_shape(std::string_view component, std::string_view name, const TensorView& tensor,
                 std::initializer_list<std::int64_t> expected) {
  check_defined(component, name, tensor);
  bool ok = tensor.rank() == static_cast<int>(expected.size());
  int dim = 0;
  for (std::int64_t size : expected) {
    if (ok && size >= 0 && tensor.size(dim) != size) ok = false;
    ++dim;
  }
  if (!ok) {
    std::string text;
    for (std::int64_t size : expected)
      append_joined(text, ", ", size < 0 ? std::string("*") : std::to_string(size));
    throw InvalidArgument(
        str_cat("[", component, "] ", name, " shape: expected [", text, "], got ", tensor.shape_string()));
  }
}

void check_dtype(std::string_view component, std::string_view name, const TensorView& tensor,
                 std::initializer_list<DType> allowed) {
  check_defined(component, name, tensor);
  std::string list;
  for (DType dtype : allowed) {
    if (tensor.dtype() == dtype) return;
    append_joined(list, " or ", to_string(dtype));
  }
  throw InvalidArgument(
      str_cat("[", component, "] ", name, " dtype: expected ", list, ", got ", to_string(tensor.dtype())));
}

void check_device(std::string_view component, std::string_view name, const TensorView& tensor,
                  Device device) {
  check_defined(component, name, tensor);
  FUSEDMOE_CHECK(tensor.device() == device, "[", component, "] ", name, " device: expected ",
                 to_string(device), ", got ", to_string(tensor.device()));
}

void check_canonical_expert_weights(std::string_view component, const TensorView& w13, const TensorView& w2,
                                    const MoeConfig& config, Device device) {
  const std::int64_t experts = config.num_local_experts(), hidden = config.hidden_size,
                     intermediate = config.intermediate_size;
  check_defined(component, "w13", w13);
  check_defined(component, "w2", w2);
  check_shape(component, "w13", w13, {experts, 2 * intermediate, hidden});
  check_shape(component, "w2", w2, {experts, hidden, intermediate});
  check_dtype(component, "w13", w13, {config.weight_dtype});
  check_dtype(component, "w2", w2, {config.weight_dtype});
  check_device(component, "w13", w13, device);
  check_device(component, "w2", w2, device);
}

}  // namespace fusedmoe
