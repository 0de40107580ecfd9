#include "core/cpu_features.hpp"

#include <sched.h>

#include <thread>

#include "core/check.hpp"
#include "core/env.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define FUSEDMOE_X86 1
#else
#define FUSEDMOE_X86 0
#endif

namespace fusedmoe {

namespace {

#if FUSEDMOE_X86
struct Registers {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

Registers cpuid(unsigned leaf, unsigned subleaf) {
  Registers r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

unsigned long long read_xcr0() {
  unsigned eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

bool bit(unsigned value, int index) {
  return (value >> index) & 1u;
}
#endif

int cores_available() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  const unsigned count = std::thread::hardware_concurrency();
  return count > 0 ? static_cast<int>(count) : 1;
}

}  // namespace

std::string_view to_string(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::scalar:
      return "scalar";
    case CpuIsa::avx2:
      return "avx2";
    case CpuIsa::avx512:
      return "avx512";
    case CpuIsa::avx512_bf16:
      return "avx512_bf16";
    case CpuIsa::amx:
      return "amx";
  }
  return "?";
}

CpuIsa parse_cpu_isa(std::string_view name) {
  for (CpuIsa isa : {CpuIsa::scalar, CpuIsa::avx2, CpuIsa::avx512, CpuIsa::avx512_bf16, CpuIsa::amx}) {
    if (name == to_string(isa)) return isa;
  }
  throw InvalidArgument(
      str_cat("[cpu] unknown ISA level '", name, "': expected scalar, avx2, avx512, avx512_bf16 or amx"));
}

CpuInfo detect_cpu_uncapped() {
  CpuInfo info;
  info.num_cores = cores_available();
#if FUSEDMOE_X86
  const unsigned max_leaf = cpuid(0, 0).eax;
  const Registers leaf1 = cpuid(1, 0);
  const Registers leaf7 = max_leaf >= 7 ? cpuid(7, 0) : Registers{};
  const Registers leaf7_1 = max_leaf >= 7 ? cpuid(7, 1) : Registers{};
  const bool osxsave = bit(leaf1.ecx, 27);
  const unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
  const bool os_avx = (xcr0 & 0x6) == 0x6;                 // XMM and YMM state
  const bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;         // XTILECFG, XTILEDATA

  const bool avx2 = os_avx && bit(leaf1.ecx, 28) && bit(leaf7.ebx, 5);
  const bool fma = os_avx && bit(leaf1.ecx, 12);
  const bool f16c = os_avx && bit(leaf1.ecx, 29);
  const bool avx512f = os_avx512 && bit(leaf7.ebx, 16);
  const bool avx512dq = os_avx512 && bit(leaf7.ebx, 17);
  const bool avx512bw = os_avx512 && bit(leaf7.ebx, 30);
  const bool avx512vl = os_avx512 && bit(leaf7.ebx, 31);
  const bool avx512_bf16 = os_avx512 && bit(leaf7_1.eax, 5);
  const bool avx512_fp16 = os_avx512 && bit(leaf7.edx, 23);
  const bool amx_tile = os_amx && bit(leaf7.edx, 24);
  const bool amx_bf16 = os_amx && bit(leaf7.edx, 22);

  const std::pair<const char*, bool> named[] = {{"avx2", avx2},
                                                {"fma", fma},
                                                {"f16c", f16c},
                                                {"avx512f", avx512f},
                                                {"avx512dq", avx512dq},
                                                {"avx512bw", avx512bw},
                                                {"avx512vl", avx512vl},
                                                {"avx512_bf16", avx512_bf16},
                                                {"avx512_fp16", avx512_fp16},
                                                {"amx_tile", amx_tile},
                                                {"amx_bf16", amx_bf16}};
  for (const auto& [name, present] : named) {
    if (present) append_joined(info.features, " ", name);
  }
  if (avx2 && fma && f16c) info.isa = CpuIsa::avx2;
  if (info.isa == CpuIsa::avx2 && avx512f && avx512dq && avx512bw && avx512vl) info.isa = CpuIsa::avx512;
  if (info.isa == CpuIsa::avx512 && avx512_bf16) info.isa = CpuIsa::avx512_bf16;
  if (info.isa == CpuIsa::avx512_bf16 && amx_tile && amx_bf16) info.isa = CpuIsa::amx;
#endif
  if (info.features.empty()) info.features = "none";
  return info;
}

CpuInfo detect_cpu() {
  static const CpuInfo uncapped = detect_cpu_uncapped();
  CpuInfo info = uncapped;
  if (const std::optional<std::string> cap = env_string("FUSEDMOE_MAX_CPU_ISA")) {
    const CpuIsa limit = parse_cpu_isa(*cap);
    if (limit < info.isa) info.isa = limit;
  }
  return info;
}

}  // namespace fusedmoe
