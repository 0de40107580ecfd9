// cuda_cutlass_grouped's GEMM: one CUTLASS 3.x Hopper grouped ("ptr-array") GEMM instantiation, bf16 in and
// out, fp32 accumulation, TMA + wgmma, warp-specialized cooperative schedule, 128x128x64 tiles, cluster
// 1x1x1. Compiled for sm_90a only (wgmma and TMA need the arch-specific target). Every expert is one group;
// the problem sizes, pointers and strides are written on the device by setup_groups_kernel from the expert
// offsets, and CUTLASS gets no host copy of the sizes (nullptr), so nothing here reads device memory back.
#include <cuda_runtime.h>

#include <string>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_cutlass_grouped/kernels/sm90_grouped_gemm.hpp"
#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/operations.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/group_array_problem_shape.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"

#if !defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
#error "cuda_cutlass_grouped needs CUDA 12.3+ (CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)"
#endif

namespace fusedmoe::cuda_cutlass_grouped {

namespace {

using ProblemShape = cutlass::gemm::GroupProblemShape<cute::Shape<int, int, int>>;  // (m, n, k) per group
using Element = cutlass::bfloat16_t;
using Accumulator = float;
// A = the expert's rows [m, k] (k contiguous); B = the expert's weight [n, k] row-major, which is CUTLASS's
// column-major k x n operand; D = [m, n] row-major. All three are "k-major"/row-major: stride (ld, 1, 0).
using LayoutA = cutlass::layout::RowMajor;
using LayoutB = cutlass::layout::ColumnMajor;
using LayoutD = cutlass::layout::RowMajor;
constexpr int kAlignment = 128 / cutlass::sizeof_bits<Element>::value;  // 8 bf16 = 16 bytes (TMA)

using TileShape = cute::Shape<cute::_128, cute::_128, cute::_64>;
using ClusterShape = cute::Shape<cute::_1, cute::_1, cute::_1>;
using KernelSchedule = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative;
using EpilogueSchedule = cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative;

// D = 1 * accumulator, no source (C is void: nothing is read).
using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
    cutlass::epilogue::collective::EpilogueTileAuto, Accumulator, Accumulator, void, LayoutD*, kAlignment,
    Element, LayoutD*, kAlignment, EpilogueSchedule,
    cutlass::epilogue::fusion::LinearCombination<Element, Accumulator, void, Accumulator>>::CollectiveOp;

using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Element, LayoutA*, kAlignment, Element, LayoutB*,
    kAlignment, Accumulator, TileShape, ClusterShape,
    cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
        sizeof(typename CollectiveEpilogue::SharedStorage))>,
    KernelSchedule>::CollectiveOp;

using GemmKernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, CollectiveMainloop, CollectiveEpilogue>;
using Gemm = cutlass::gemm::device::GemmUniversalAdapter<GemmKernel>;

using StrideA = typename GemmKernel::InternalStrideA;
using StrideB = typename GemmKernel::InternalStrideB;
using StrideD = typename GemmKernel::InternalStrideD;
using Shape = ProblemShape::UnderlyingProblemShape;

// The per-group argument arrays, carved out of one device buffer (each array 16-byte aligned).
struct ArgumentArrays {
  Shape* shapes;
  const Element** a;
  const Element** b;
  Element** d;
  StrideA* stride_a;
  StrideB* stride_b;
  StrideD* stride_d;
};

constexpr std::size_t round16(std::size_t bytes) {
  return (bytes + 15) / 16 * 16;
}

std::size_t arguments_bytes(int groups, ArgumentArrays* arrays, void* base) {
  const auto count = static_cast<std::size_t>(groups);
  std::size_t offset = 0;
  auto place = [&](auto*& pointer, std::size_t element_bytes) {
    using Pointer = std::remove_reference_t<decltype(pointer)>;
    pointer = base != nullptr ? reinterpret_cast<Pointer>(static_cast<char*>(base) + offset) : nullptr;
    offset += round16(count * element_bytes);
  };
  ArgumentArrays local{};
  ArgumentArrays& out = arrays != nullptr ? *arrays : local;
  place(out.shapes, sizeof(Shape));
  place(out.a, sizeof(const Element*));
  place(out.b, sizeof(const Element*));
  place(out.d, sizeof(Element*));
  place(out.stride_a, sizeof(StrideA));
  place(out.stride_b, sizeof(StrideB));
  place(out.stride_d, sizeof(StrideD));
  return offset;
}

// One thread per group: (m_g, n, k), the group's first rows of a and d, its weight, and the (constant)
// strides.
__global__ void setup_groups_kernel(ArgumentArrays arrays, int groups, const std::int64_t* offsets,
                                    const Element* a, const Element* b, Element* d, std::int64_t n,
                                    std::int64_t k) {
  const int group = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (group >= groups) return;
  const std::int64_t begin = offsets[group], rows = offsets[group + 1] - begin;
  arrays.shapes[group] = Shape(static_cast<int>(rows), static_cast<int>(n), static_cast<int>(k));
  arrays.a[group] = a + begin * k;
  arrays.b[group] = b + static_cast<std::int64_t>(group) * n * k;
  arrays.d[group] = d + begin * n;
  arrays.stride_a[group] = cute::make_stride(k, cute::Int<1>{}, cute::Int<0>{});
  arrays.stride_b[group] = cute::make_stride(k, cute::Int<1>{}, cute::Int<0>{});
  arrays.stride_d[group] = cute::make_stride(n, cute::Int<1>{}, cute::Int<0>{});
}

typename Gemm::Arguments make_arguments(const GroupedGemm& gemm, const ArgumentArrays& arrays) {
  typename Gemm::Arguments arguments{};
  arguments.mode = cutlass::gemm::GemmUniversalMode::kGrouped;
  // No host copy of the sizes: CUTLASS launches one persistent CTA per SM and reads the sizes on the device.
  arguments.problem_shape = ProblemShape{gemm.num_groups, arrays.shapes, nullptr};
  arguments.mainloop.ptr_A = arrays.a;
  arguments.mainloop.dA = arrays.stride_a;
  arguments.mainloop.ptr_B = arrays.b;
  arguments.mainloop.dB = arrays.stride_b;
  auto& fusion = arguments.epilogue.thread;
  fusion.alpha = 1.0f;
  fusion.beta = 0.0f;
  fusion.alpha_ptr = nullptr;
  fusion.beta_ptr = nullptr;
  fusion.alpha_ptr_array = nullptr;
  fusion.beta_ptr_array = nullptr;
  arguments.epilogue.ptr_C = nullptr;
  arguments.epilogue.dC = nullptr;
  arguments.epilogue.ptr_D = arrays.d;
  arguments.epilogue.dD = arrays.stride_d;
  arguments.hw_info.device_id = gemm.device_index;
  arguments.hw_info.sm_count = gemm.sm_count;
  return arguments;
}

[[noreturn]] void throw_cutlass(const char* what, cutlass::Status status) {
  throw CudaError(std::string("[cuda_cutlass_grouped] CUTLASS ") + what +
                  " failed: " + cutlassGetStatusString(status));
}

}  // namespace

std::size_t grouped_gemm_arguments_bytes(int num_groups) {
  return arguments_bytes(num_groups, nullptr, nullptr);
}

std::size_t grouped_gemm_workspace_bytes(int num_groups, int sm_count) {
  GroupedGemm probe;
  probe.num_groups = num_groups;
  probe.sm_count = sm_count;
  return Gemm::get_workspace_size(make_arguments(probe, ArgumentArrays{}));
}

void run_grouped_gemm(const GroupedGemm& gemm, StreamHandle stream_handle) {
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  if (gemm.num_groups == 0) return;
  ArgumentArrays arrays{};
  arguments_bytes(gemm.num_groups, &arrays, gemm.arguments);
  constexpr int kThreads = 128;
  setup_groups_kernel<<<(gemm.num_groups + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
      arrays, gemm.num_groups, gemm.offsets, static_cast<const Element*>(gemm.a),
      static_cast<const Element*>(gemm.b), static_cast<Element*>(gemm.d), gemm.n, gemm.k);
  FUSEDMOE_CUDA_CHECK_LAUNCH();

  const typename Gemm::Arguments arguments = make_arguments(gemm, arrays);
  Gemm runner;
  cutlass::Status status = runner.can_implement(arguments);
  if (status != cutlass::Status::kSuccess) throw_cutlass("can_implement", status);
  // initialize() builds the TMA descriptors on the host and sets the kernel's shared memory attribute;
  // it enqueues nothing that waits for the device.
  status = runner.initialize(arguments, gemm.workspace, stream);
  if (status != cutlass::Status::kSuccess) throw_cutlass("initialize", status);
  status = runner.run(stream);
  if (status != cutlass::Status::kSuccess) throw_cutlass("run", status);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

}  // namespace fusedmoe::cuda_cutlass_grouped
