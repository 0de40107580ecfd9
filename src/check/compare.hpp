// Error measures between a result and a reference, and the tolerance per dtype.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "fusedmoe/dtype.hpp"
#include "fusedmoe/tensor.hpp"

namespace fusedmoe {

struct ErrorStats {
  double max_abs_error = 0.0;   // max |out - ref|
  double relative_error = 0.0;  // ||out - ref||_2 / ||ref||_2 (0 when both are 0)
  std::int64_t non_finite = 0;  // NaN or Inf entries in out
};

ErrorStats compare_to_reference(const TensorView& out, std::span<const double> reference);
// Relative-error tolerance against an fp64 reference for outputs in `act_dtype`:
// fp32 1e-5, fp16 2e-3, bf16 1e-2.
double tolerance_for(DType act_dtype);

}  // namespace fusedmoe
