// The oracle: picks the Experts backend for a config on a platform. It walks one priority list
// (src/oracle/registry.cpp), asks each candidate's supports() (cheap, pure, with a reason),
// honours an explicit override (API argument, else FUSEDMOE_BACKEND), logs every skipped
// candidate at the `dispatch` log level, and fails listing every candidate's reason when none fits.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fusedmoe/config.hpp"
#include "fusedmoe/kernel.hpp"
#include "fusedmoe/platform.hpp"
#include "fusedmoe/weights.hpp"

namespace fusedmoe {

// The answer of supports(): ok, or the reason why not, naming the limit and the value.
struct Support {
  bool ok = true;
  std::string reason;
  static Support yes() { return {true, {}}; }
  static Support no(std::string reason) { return {false, std::move(reason)}; }
  explicit operator bool() const { return ok; }
};

inline constexpr int kBackendApiVersion = 1;

// One entry of the oracle's registry.
struct BackendInfo {
  int api_version = kBackendApiVersion;  // must equal kBackendApiVersion
  std::string id;                        // "cpu_reference", "cuda_fused", ... the same string everywhere
  DeviceKind device_kind = DeviceKind::cpu;
  ExpertsKind kind = ExpertsKind::modular;
  // Can this backend run `config` on `platform`, fed in `format`? Cheap: no allocation, no kernel.
  std::function<Support(const MoeConfig&, const Platform&, ActivationFormat)> supports;
  // Converts canonical expert weights ([E_local, 2I, H] / [E_local, H, I]) into its own layout, once.
  std::function<std::shared_ptr<const ExpertWeights>(const Tensor& w13, const Tensor& w2, const MoeConfig&)>
      convert_weights;
  std::function<std::unique_ptr<Experts>(const MoeConfig&)> make_experts;
};

// Adds an out-of-tree backend. It goes before `before_id` in the priority list of its device
// kind, or first when before_id is empty. Throws InvalidArgument on a duplicate id, a missing
// function, an api_version mismatch or an unknown before_id.
void register_backend(BackendInfo info, std::string_view before_id = {});
// Removes a backend registered with register_backend (built-ins cannot be removed). Returns false if absent.
// Its entry stays alive (layers that selected it keep working); it is no longer found or offered.
bool unregister_backend(std::string_view id);
// All registered backends of a device kind, best first.
std::vector<const BackendInfo*> backends_for(DeviceKind kind);
const BackendInfo* find_backend(std::string_view id);

struct Candidate {
  const BackendInfo* backend = nullptr;
  Support support;
};

struct Selection {
  const BackendInfo* backend = nullptr;  // the chosen one
  bool overridden = false;               // chosen by an explicit override
  std::vector<Candidate> considered;     // every candidate for the device, in priority order
  std::string describe() const;          // one line per candidate: selected / supported / skipped: reason
};

// Evaluates every candidate without choosing (for `fusedmoe backends` and tests).
std::vector<Candidate> evaluate_backends(const MoeConfig& config, const Platform& platform);
// How select_backend chooses.
struct SelectionOptions {
  std::optional<std::string> override_id{};  // forces one backend
  bool override_from_env = true;             // without override_id, FUSEDMOE_BACKEND (when set) forces one
  // Only backends of this kind: a caller that passes top-k ids needs modular Experts. The others are
  // skipped with that reason, and forcing one is an error.
  std::optional<ExpertsKind> kind{};
};
// Chooses. An override forces one backend: unknown, unsupported or of the wrong kind is an error, never a
// silent fallback. Throws Unsupported when nothing fits.
Selection select_backend(const MoeConfig& config, const Platform& platform, const SelectionOptions& options);
// The same with override_id (else FUSEDMOE_BACKEND when set) and any kind.
Selection select_backend(const MoeConfig& config, const Platform& platform,
                         std::optional<std::string> override_id = std::nullopt);

}  // namespace fusedmoe
