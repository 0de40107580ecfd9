// Where a tensor lives. Every tensor carries one, and every backend checks it in supports().
#pragma once

#include <string>
#include <string_view>

namespace fusedmoe {

enum class DeviceKind { cpu, cuda };

struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int index = 0;

  static Device cpu() { return {DeviceKind::cpu, 0}; }
  static Device cuda(int index = 0) { return {DeviceKind::cuda, index}; }
  bool is_cpu() const { return kind == DeviceKind::cpu; }
  bool is_cuda() const { return kind == DeviceKind::cuda; }
  friend bool operator==(const Device&, const Device&) = default;
};

std::string to_string(Device device);         // "cpu", "cuda:0"
std::string_view to_string(DeviceKind kind);  // "cpu", "cuda"
// Parses "cpu", "cuda", "cuda:N"; throws InvalidArgument otherwise.
Device parse_device(std::string_view text);

// Opaque CUDA stream (a cudaStream_t), so that public headers never include CUDA headers.
using StreamHandle = void*;

// How one call executes: the stream for CUDA work and the CPU thread count (0 = the default:
// FUSEDMOE_NUM_THREADS, else the cores available to the process).
struct ExecContext {
  StreamHandle stream = nullptr;
  int num_threads = 0;
};

}  // namespace fusedmoe
