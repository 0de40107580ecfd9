// Argument checks on tensors, with messages of the form "[component] name: expected X, got Y".
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "fusedmoe/tensor.hpp"

namespace fusedmoe {

// Shape check; a -1 entry in `expected` matches any size. Throws InvalidArgument.
void check_shape(std::string_view component, std::string_view name, const TensorView& tensor,
                 std::initializer_list<std::int64_t> expected);
void check_dtype(std::string_view component, std::string_view name, const TensorView& tensor,
                 std::initializer_list<DType> allowed);
void check_device(std::string_view component, std::string_view name, const TensorView& tensor, Device device);
void check_defined(std::string_view component, std::string_view name, const TensorView& tensor);

}  // namespace fusedmoe
