// The backend registry. The built-in list below IS the priority policy: best first per device
// kind, ending with the reference family. Nothing else reorders it.
#include <algorithm>
#include <mutex>

#include "backends/backends.hpp"
#include "core/check.hpp"
#include "core/cuda_runtime.hpp"
#include "fusedmoe/oracle.hpp"

namespace fusedmoe {

namespace {

#if !FUSEDMOE_WITH_CUDA
// A CPU-only build still lists its CUDA backends, each answering why it cannot run.
BackendInfo without_cuda(std::string id) {
  BackendInfo info;
  info.id = std::move(id);
  info.device_kind = DeviceKind::cuda;
  info.supports = [](const MoeConfig&, const Platform&, ActivationFormat) {
    return Support::no("built without CUDA (FUSEDMOE_CUDA=OFF or no CUDA compiler)");
  };
  info.convert_weights = [](const Tensor&, const Tensor&,
                            const MoeConfig&) -> std::shared_ptr<const ExpertWeights> {
    throw Unsupported("[oracle] fusedmoe was built without CUDA");
  };
  info.make_experts = [](const MoeConfig&) -> std::unique_ptr<Experts> {
    throw Unsupported("[oracle] fusedmoe was built without CUDA");
  };
  return info;
}
#endif

std::vector<BackendInfo> builtin_backends() {
  std::vector<BackendInfo> list;
  // ---- CPU, best first ----
  list.push_back(cpu_avx512_bf16_backend());
  list.push_back(cpu_avx2_backend());
  list.push_back(cpu_onednn_grouped_backend());
  list.push_back(cpu_reference_backend());
  list.push_back(cpu_reference_batched_backend());
  list.push_back(cpu_reference_monolithic_backend());
  // ---- CUDA, best first ----
#if FUSEDMOE_WITH_CUDA
  install_cuda_runtime();  // memory hooks + device probe (explicit, idempotent)
  list.push_back(cuda_fused_backend());
  list.push_back(cuda_cutlass_grouped_backend());
  list.push_back(cuda_cublas_grouped_backend());
  list.push_back(cuda_batched_backend());
  list.push_back(cuda_monolithic_backend());
#else
  list.push_back(without_cuda("cuda_fused"));
  list.push_back(without_cuda("cuda_cutlass_grouped"));
  list.push_back(without_cuda("cuda_cublas_grouped"));
  list.push_back(without_cuda("cuda_batched"));
  list.push_back(without_cuda("cuda_monolithic"));
#endif
  return list;
}

struct Registry {
  std::mutex mutex;
  std::vector<std::unique_ptr<BackendInfo>> entries;  // priority order; pointers stay valid
  // Unregistered entries, kept alive: a layer's Selection (or a concurrent selection) may still point to one.
  std::vector<std::unique_ptr<BackendInfo>> retired;
  std::size_t num_builtin = 0;
  Registry() {
    for (BackendInfo& info : builtin_backends())
      entries.push_back(std::make_unique<BackendInfo>(std::move(info)));
    num_builtin = entries.size();
  }
};

Registry& registry() {
  static Registry instance;
  return instance;
}

std::string known_ids(const Registry& reg) {
  std::string ids;
  for (const auto& entry : reg.entries) append_joined(ids, ", ", entry->id);
  return ids;
}

}  // namespace

void register_backend(BackendInfo info, std::string_view before_id) {
  FUSEDMOE_CHECK(info.api_version == kBackendApiVersion, "[oracle] backend '", info.id,
                 "' was built for backend API ", info.api_version, "; this fusedmoe expects ",
                 kBackendApiVersion);
  FUSEDMOE_CHECK(!info.id.empty(), "[oracle] register_backend: the backend id is empty");
  FUSEDMOE_CHECK(info.supports && info.convert_weights && info.make_experts, "[oracle] backend '", info.id,
                 "' must provide supports, convert_weights and make_experts");
  Registry& reg = registry();
  std::lock_guard lock(reg.mutex);
  for (const auto& entry : reg.entries) {
    FUSEDMOE_CHECK(entry->id != info.id, "[oracle] a backend with id '", info.id, "' is already registered");
  }
  auto position = reg.entries.end();
  if (!before_id.empty()) {
    position = std::find_if(reg.entries.begin(), reg.entries.end(),
                            [&](const auto& entry) { return entry->id == before_id; });
    FUSEDMOE_CHECK(position != reg.entries.end(), "[oracle] register_backend: unknown before_id '", before_id,
                   "': expected one of ", known_ids(reg));
  } else {
    // First among the backends of its device kind.
    position = std::find_if(reg.entries.begin(), reg.entries.end(),
                            [&](const auto& entry) { return entry->device_kind == info.device_kind; });
  }
  reg.entries.insert(position, std::make_unique<BackendInfo>(std::move(info)));
}

bool unregister_backend(std::string_view id) {
  Registry& reg = registry();
  std::lock_guard lock(reg.mutex);
  const auto found = std::find_if(reg.entries.begin(), reg.entries.end(),
                                  [&](const auto& entry) { return entry->id == id; });
  if (found == reg.entries.end()) return false;
  for (BackendInfo& builtin : builtin_backends()) {
    FUSEDMOE_CHECK(builtin.id != id, "[oracle] '", id, "' is a built-in backend and cannot be unregistered");
  }
  reg.retired.push_back(std::move(*found));
  reg.entries.erase(found);
  return true;
}

std::vector<const BackendInfo*> backends_for(DeviceKind kind) {
  Registry& reg = registry();
  std::lock_guard lock(reg.mutex);
  std::vector<const BackendInfo*> list;
  for (const auto& entry : reg.entries) {
    if (entry->device_kind == kind) list.push_back(entry.get());
  }
  return list;
}

const BackendInfo* find_backend(std::string_view id) {
  Registry& reg = registry();
  std::lock_guard lock(reg.mutex);
  for (const auto& entry : reg.entries) {
    if (entry->id == id) return entry.get();
  }
  return nullptr;
}

std::vector<std::string> registered_backend_ids() {
  Registry& reg = registry();
  std::lock_guard lock(reg.mutex);
  std::vector<std::string> ids;
  for (const auto& entry : reg.entries) ids.push_back(entry->id);
  return ids;
}

}  // namespace fusedmoe
