// Oracle::select: one loop over the priority list, with reasons for every skip.
#include "fusedmoe/oracle.hpp"
#include "core/check.hpp"
#include "core/env.hpp"
#include "fusedmoe/log.hpp"

namespace fusedmoe {

std::vector<std::string> registered_backend_ids();  // registry.cpp

namespace {
std::string join_ids(const std::vector<std::string>& ids) {
  std::string text;
  for (const std::string& id : ids) append_joined(text, ", ", id);
  return text;
}
}  // namespace

std::vector<Candidate> evaluate_backends(const MoeConfig& config, const Platform& platform) {
  config.validate();
  const ActivationFormat format = dispatch_format(config);
  std::vector<Candidate> candidates;
  for (const BackendInfo* backend : backends_for(config.device.kind)) {
    candidates.push_back({backend, backend->supports(config, platform, format)});
  }
  return candidates;
}

std::string Selection::describe() const {
  std::string text;
  for (const Candidate& candidate : considered) {
    std::string status;
    if (candidate.backend == backend) {
      status = overridden ? "selected (override)" : "selected";
    } else if (candidate.support.ok) {
      status = "supported";
    } else {
      status = "skipped: " + candidate.support.reason;
    }
    text += str_cat("  ", candidate.backend->id, ": ", status, "\n");
  }
  return text;
}

Selection select_backend(const MoeConfig& config, const Platform& platform,
                         std::optional<std::string> override_id) {
  return select_backend(config, platform, SelectionOptions{.override_id = std::move(override_id)});
}

Selection select_backend(const MoeConfig& config, const Platform& platform, const SelectionOptions& options) {
  Selection selection;
  selection.considered = evaluate_backends(config, platform);
  if (options.kind) {
    for (Candidate& candidate : selection.considered) {
      if (candidate.support.ok && candidate.backend->kind != *options.kind) {
        candidate.support =
            Support::no(str_cat(to_string(candidate.backend->kind), " Experts: this caller needs ",
                                to_string(*options.kind), " ones"));
      }
    }
  }
  std::optional<std::string> override_id = options.override_id;
  if (!override_id && options.override_from_env) override_id = env_string("FUSEDMOE_BACKEND");

  if (override_id) {
    const BackendInfo* forced = find_backend(*override_id);
    if (forced == nullptr) {
      throw InvalidArgument(str_cat("[oracle] unknown backend '", *override_id, "' (from ",
                                    "the override): expected one of ", join_ids(registered_backend_ids())));
    }
    if (forced->device_kind != config.device.kind) {
      throw Unsupported(str_cat("[oracle] backend '", forced->id, "' runs on ",
                                to_string(forced->device_kind), " but the config's device is ",
                                to_string(config.device)));
    }
    for (const Candidate& candidate : selection.considered) {
      if (candidate.backend != forced) continue;
      if (!candidate.support.ok) {
        throw Unsupported(str_cat("[oracle] backend '", forced->id, "' was forced but cannot run ",
                                  config.describe(), ": ", candidate.support.reason));
      }
    }
    selection.backend = forced;
    selection.overridden = true;
    log(LogLevel::info,
        str_cat("[oracle] using backend ", forced->id, " (override) for ", config.describe()));
    return selection;
  }

  for (const Candidate& candidate : selection.considered) {
    if (candidate.support.ok) {
      selection.backend = candidate.backend;
      break;
    }
    if (log_enabled(LogLevel::dispatch)) {
      log(LogLevel::dispatch,
          str_cat("[oracle] skip ", candidate.backend->id, ": ", candidate.support.reason));
    }
  }
  if (selection.backend == nullptr) {
    throw Unsupported(str_cat("[oracle] no backend supports ", config.describe(), " on ", platform.describe(),
                              ":\n", selection.describe()));
  }
  log(LogLevel::info, str_cat("[oracle] using backend ", selection.backend->id, " for ", config.describe()));
  return selection;
}

}  // namespace fusedmoe
