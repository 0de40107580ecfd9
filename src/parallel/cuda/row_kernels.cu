#include "parallel/cuda/row_kernels.hpp"

#include <algorithm>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_common/kernels/elements.cuh"
#include "core/check.hpp"
#include "parallel/cuda/widest_word.cuh"

namespace fusedmoe::cuda {

namespace {

constexpr int kThreads = 256;

// One block per row (grid.x holds up to 2^31 - 1 rows). Word is the widest type that divides the row size and
// both base addresses.
template <class Word, bool kScatter>
__global__ void move_rows_kernel(const Word* source, const std::int32_t* rows, std::int64_t words_per_row,
                                 Word* destination) {
  const std::int64_t i = blockIdx.x;
  const std::int64_t from = kScatter ? i : rows[i];
  const std::int64_t to = kScatter ? rows[i] : i;
  const Word* in = source + from * words_per_row;
  Word* out = destination + to * words_per_row;
  for (std::int64_t w = threadIdx.x; w < words_per_row; w += blockDim.x) out[w] = in[w];
}

template <bool kScatter>
void move_rows(const void* source, const std::int32_t* rows, std::int64_t count, std::size_t row_bytes,
               void* destination, StreamHandle stream) {
  if (count == 0 || row_bytes == 0) return;
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  const std::uintptr_t alignment =
      reinterpret_cast<std::uintptr_t>(source) | reinterpret_cast<std::uintptr_t>(destination) | row_bytes;
  const dim3 grid(static_cast<unsigned>(count));
  auto launch = [&](auto word) {
    using Word = decltype(word);
    const auto words = static_cast<std::int64_t>(row_bytes / sizeof(Word));
    const int threads = static_cast<int>(std::min<std::int64_t>(kThreads, (words + 31) / 32 * 32));
    move_rows_kernel<Word, kScatter><<<grid, threads, 0, cuda_stream>>>(
        static_cast<const Word*>(source), rows, words, static_cast<Word*>(destination));
  };
  with_widest_word(alignment, launch);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

// One block per output row (grid.x) and kThreads columns per block (grid.y covers the width).
__global__ void sum_rows_kernel(const void* source, ElementType source_type, const float* weights,
                                const std::int32_t* offsets, std::int64_t stride, const std::int32_t* rows,
                                void* out, ElementType out_type, std::int64_t width) {
  const std::int64_t t = blockIdx.x;
  const std::int64_t column = static_cast<std::int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (column >= width) return;
  const std::int64_t begin = offsets != nullptr ? offsets[t] : t * stride;
  const std::int64_t end = offsets != nullptr ? offsets[t + 1] : (t + 1) * stride;
  float sum = 0.0f;
  for (std::int64_t j = begin; j < end; ++j) {
    const std::int64_t row = rows != nullptr ? rows[j] : j;
    const float value = load_as_float(source, source_type, row * width + column);
    sum += weights != nullptr ? weights[row] * value : value;
  }
  store_from_float(out, out_type, t * width + column, sum);
}

}  // namespace

void gather_rows(int device, const void* source, const std::int32_t* rows, std::int64_t count,
                 std::size_t row_bytes, void* destination, StreamHandle stream) {
  DeviceGuard guard(device);
  move_rows<false>(source, rows, count, row_bytes, destination, stream);
}

void scatter_rows(int device, const void* source, const std::int32_t* rows, std::int64_t count,
                  std::size_t row_bytes, void* destination, StreamHandle stream) {
  DeviceGuard guard(device);
  move_rows<true>(source, rows, count, row_bytes, destination, stream);
}

void sum_rows(int device, const RowSum& sum, StreamHandle stream) {
  if (sum.out_rows == 0 || sum.width == 0) return;
  DeviceGuard guard(device);
  FUSEDMOE_ASSERT(sum.width <= static_cast<std::int64_t>(kThreads) * 65535, "row width ", sum.width);
  const dim3 grid(static_cast<unsigned>(sum.out_rows),
                  static_cast<unsigned>((sum.width + kThreads - 1) / kThreads));
  sum_rows_kernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      sum.source, element_type(sum.source_dtype), sum.weights, sum.offsets, sum.stride, sum.rows, sum.out,
      element_type(sum.out_dtype), sum.width);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

void check_not_capturing(int device, StreamHandle stream, std::string_view what) {
  DeviceGuard guard(device);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  FUSEDMOE_CUDA_CHECK(cudaStreamIsCapturing(static_cast<cudaStream_t>(stream), &status));
  if (status != cudaStreamCaptureStatusNone) {
    throw Unsupported(
        str_cat(what,
                " reads the routing back to the host and waits for the GPU, so it cannot be captured "
                "in a CUDA graph; run the expert-parallel layer outside graph capture"));
  }
}

}  // namespace fusedmoe::cuda
