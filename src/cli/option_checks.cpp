#include "cli/option_checks.hpp"

#include <unistd.h>

#include <filesystem>

#include "core/check.hpp"
#include "fusedmoe/oracle.hpp"

namespace fusedmoe::cli {

void require_known_backends(const std::vector<std::string>& ids, std::string_view command) {
  for (const std::string& id : ids) {
    if (find_backend(id) != nullptr) continue;
    std::string known;
    for (DeviceKind kind : {DeviceKind::cpu, DeviceKind::cuda}) {
      for (const BackendInfo* backend : backends_for(kind)) append_joined(known, ", ", backend->id);
    }
    throw InvalidArgument(str_cat("[", command, "] unknown backend '", id, "': expected one of ", known));
  }
}

void require_writable_file(const std::string& path, std::string_view command, std::string_view option) {
  namespace fs = std::filesystem;
  const fs::path file(path);
  const fs::path folder = file.has_parent_path() ? file.parent_path() : fs::path(".");
  std::error_code error;
  FUSEDMOE_CHECK(!fs::is_directory(file, error), "[", command, "] ", option, " ", path,
                 " is a folder: expected a file name");
  FUSEDMOE_CHECK(fs::is_directory(folder, error), "[", command, "] ", option, " ", path, ": the folder ",
                 folder.string(), " does not exist");
  // The file is written beside itself first (a temporary, then renamed): the folder must be writable.
  FUSEDMOE_CHECK(::access(folder.c_str(), W_OK) == 0, "[", command, "] ", option, " ", path, ": the folder ",
                 folder.string(), " is not writable");
}

}  // namespace fusedmoe::cli
