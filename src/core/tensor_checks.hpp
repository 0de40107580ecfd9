// Argument checks on tensors, with messages of the form "[component] name: expected X, got Y".
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "fusedmoe/config.hpp"
#include "fusedmoe/tensor.hpp"

namespace fusedmoe {

// Shape check; a -1 entry in `expected` matches any size. Throws InvalidArgument.
void check_shape(std::string_view component, std::string_view name, const TensorView& tensor,
                 std::initializer_list<std::int64_t> expected);
void check_dtype(std::string_view component, std::string_view name, const TensorView& tensor,
                 std::initializer_list<DType> allowed);
void check_device(std::string_view component, std::string_view name, const TensorView& tensor, Device device);
void check_defined(std::string_view component, std::string_view name, const TensorView& tensor);
// The canonical expert weights a backend converts (BackendInfo::convert_weights): w13 [E_local, 2I, H] and
// w2 [E_local, H, I] of config.weight_dtype on `device`. Backends size their buffers from the config, so a
// tensor of another shape or dtype would be read out of bounds. Throws InvalidArgument.
void check_canonical_expert_weights(std::string_view component, const TensorView& w13, const TensorView& w2,
                                    const MoeConfig& config, Device device);

}  // namespace fusedmoe
