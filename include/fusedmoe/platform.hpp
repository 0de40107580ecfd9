// What the machine offers, as the oracle's supports() questions see it. Detected at run time
// (cpuid + the OS's XCR0 register state), never assumed from compiler flags; tests build synthetic ones.
#pragma once

#include <string>

#include "fusedmoe/device.hpp"

namespace fusedmoe {

// x86 levels, each including the ones before it. FUSEDMOE_MAX_CPU_ISA caps detection.
enum class CpuIsa { scalar, avx2, avx512, avx512_bf16, amx };

std::string_view to_string(CpuIsa isa);
CpuIsa parse_cpu_isa(std::string_view name);

struct CpuInfo {
  CpuIsa isa = CpuIsa::scalar;  // highest usable level (after the cap)
  std::string features;         // human-readable list of what was found, e.g. "avx2 fma avx512f ..."
  int num_cores = 1;            // cores available to this process
};

struct CudaInfo {
  bool available = false;
  int compute_capability = 0;  // 90 for sm_90
  int num_sms = 0;
  std::size_t shared_memory_per_block = 0;  // the opt-in maximum a kernel may request
  std::string name;
  std::string reason;  // why not available (no device, no driver, built without CUDA), else empty
};

struct Platform {
  Device device{};
  CpuInfo cpu{};
  CudaInfo cuda{};
  bool built_with_cuda = false;

  // Detects the machine for a device (cached per process for the CPU part).
  static Platform detect(Device device = Device::cpu());
  std::string describe() const;
};

}  // namespace fusedmoe
