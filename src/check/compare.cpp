#include "check/compare.hpp"

#include <cmath>

#include "core/check.hpp"
#include "core/elements.hpp"

namespace fusedmoe {

ErrorStats compare_to_reference(const TensorView& out, std::span<const double> reference) {
  FUSEDMOE_CHECK(out.numel() == static_cast<std::int64_t>(reference.size()), "[check] output has ",
                 out.numel(), " elements, reference ", reference.size());
  ErrorStats stats;
  double diff_sq = 0.0, ref_sq = 0.0;
  for (std::size_t index = 0; index < reference.size(); ++index) {
    const double value = load_element(out.data(), out.dtype(), static_cast<std::int64_t>(index));
    if (!std::isfinite(value)) {
      ++stats.non_finite;
      continue;
    }
    const double diff = value - reference[index];
    stats.max_abs_error = std::max(stats.max_abs_error, std::abs(diff));
    diff_sq += diff * diff;
    ref_sq += reference[index] * reference[index];
  }
  if (stats.non_finite > 0) {
    stats.relative_error = INFINITY;
  } else {
    stats.relative_error = ref_sq > 0.0 ? std::sqrt(diff_sq / ref_sq) : std::sqrt(diff_sq);
  }
  return stats;
}

double tolerance_for(DType act_dtype) {
  switch (act_dtype) {
    case DType::fp32:
      return 1e-5;
    case DType::fp16:
      return 2e-3;
    default:
      return 1e-2;
  }
}

}  // namespace fusedmoe
