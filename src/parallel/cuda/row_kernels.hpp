// Device kernels of the expert-parallel PrepareFinalize (src/parallel/prepare_finalize_ep.cpp): moving rows
// by index lists and summing rows in fp32. Plain C++ (no CUDA headers); compiled only with CUDA. Every
// function enqueues on `stream` of CUDA device `device` (made current for the call), allocates nothing and
// never waits. Pointers are device pointers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fusedmoe/device.hpp"
#include "fusedmoe/dtype.hpp"

namespace fusedmoe::cuda {

// destination row i = source row rows[i], for i < count; rows of row_bytes bytes.
void gather_rows(int device, const void* source, const std::int32_t* rows, std::int64_t count,
                 std::size_t row_bytes, void* destination, StreamHandle stream);
// destination row rows[i] = source row i, for i < count.
void scatter_rows(int device, const void* source, const std::int32_t* rows, std::int64_t count,
                  std::size_t row_bytes, void* destination, StreamHandle stream);

// out[t, :] = sum over j in [begin_t, end_t) of weight(j) * source[row(j), :], summed in fp32 in j order and
// rounded once into out's dtype, for t < out_rows. begin_t/end_t = offsets[t]/offsets[t + 1], or t * stride
// and (t + 1) * stride when offsets is null; row(j) = rows[j], or j when rows is null; weight(j) =
// weights[row(j)], or 1 when weights is null. source [*, width] and out [out_rows, width] in fp32, bf16 or
// fp16.
struct RowSum {
  const void* source = nullptr;
  DType source_dtype = DType::fp32;
  const float* weights = nullptr;
  const std::int32_t* offsets = nullptr;
  std::int64_t stride = 1;
  const std::int32_t* rows = nullptr;
  void* out = nullptr;
  DType out_dtype = DType::fp32;
  std::int64_t out_rows = 0;
  std::int64_t width = 0;
};
void sum_rows(int device, const RowSum& sum, StreamHandle stream);

// Throws Unsupported naming `what` when `stream` is being captured into a CUDA graph (the expert-parallel
// paths read routing back to the host, which a graph cannot hold).
void check_not_capturing(int device, StreamHandle stream, std::string_view what);

}  // namespace fusedmoe::cuda
