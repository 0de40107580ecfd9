// SafetensorsCheckpoint: a Hugging Face checkpoint directory, single-file or sharded through
// model.safetensors.index.json, whose shards are mapped only when one of their tensors is first used.
#include <mutex>
#include <optional>
#include <system_error>

#include "core/check.hpp"
#include "fusedmoe/safetensors.hpp"
#include "io/mapped_file.hpp"
#include "io/safetensors_common.hpp"

namespace fusedmoe {

using io::describe_json;
using io::single_quoted;

namespace {
constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

// Shard names come from an untrusted index: only plain file names inside the directory are accepted.
bool is_plain_file_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\\') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

bool is_existing_file(const std::filesystem::path& path) {
  std::error_code error;
  return std::filesystem::is_regular_file(path, error);
}
// The checkpoint's state. SafetensorsCheckpoint::Impl (private) derives from it so that read_index() can name
// it.
struct CheckpointState {
  std::filesystem::path directory;
  std::string prefix;                                        // "[safetensors] checkpoint <dir>"
  std::vector<std::string> shard_files;                      // file names, sorted
  std::map<std::string, std::size_t, std::less<>> shard_of;  // tensor name -> index into shard_files
  mutable std::mutex mutex;                                  // guards `opened`
  std::vector<std::optional<SafetensorsFile>> opened;        // one slot per shard, filled on first use

  std::size_t shard_index(std::string_view name) const {
    const auto found = shard_of.find(name);
    if (found == shard_of.end()) {
      throw IoError(str_cat(prefix, ": tensor ", single_quoted(name),
                            " is not in the checkpoint: expected one of its ", shard_of.size(), " tensors"));
    }
    return found->second;
  }

  // NOTE: the slot vector never resizes after open(), so a reference to a filled slot stays valid.
  const SafetensorsFile& shard(std::size_t index) {
    const std::lock_guard<std::mutex> lock(mutex);
    std::optional<SafetensorsFile>& slot = opened[index];
    if (!slot) slot.emplace(SafetensorsFile::open(directory / shard_files[index]));
    return *slot;
  }
};

void read_index(CheckpointState& checkpoint, const std::filesystem::path& index_path) {
  const std::string prefix = str_cat(checkpoint.prefix, ": ", kIndexFile);
  MappedFile mapping;
  try {
    mapping = MappedFile::open(index_path);
  } catch (const IoError& error) {
    throw IoError(str_cat("[safetensors] ", error.what()));
  }
  if (mapping.size() > kSafetensorsMaxHeaderBytes) {
    throw IoError(
        str_cat(prefix, ": expected at most ", kSafetensorsMaxHeaderBytes, " bytes, got ", mapping.size()));
  }
  const std::string_view text(reinterpret_cast<const char*>(mapping.bytes().data()), mapping.size());
  if (const std::optional<std::size_t> bad = io::find_invalid_utf8(text)) {
    throw IoError(
        str_cat(prefix, ": not valid UTF-8: expected UTF-8 text, got an invalid byte at offset ", *bad));
  }
  const io::Json index = io::parse_json_strict(text, prefix, "key", 16);
  if (!index.is_object())
    throw IoError(str_cat(prefix, ": expected a JSON object, got ", describe_json(index)));
  if (!index.contains("weight_map"))
    throw IoError(str_cat(prefix, ": expected a 'weight_map' key, got none"));
  const io::Json& weight_map = index["weight_map"];
  if (!weight_map.is_object()) {
    throw IoError(str_cat(prefix, ": weight_map: expected an object of tensor name -> shard file, got ",
                          describe_json(weight_map)));
  }
  std::map<std::string, std::string> shard_by_tensor;
  std::map<std::string, std::size_t> index_by_shard;
  for (const auto& [name, shard] : weight_map.items()) {
    if (!shard.is_string()) {
      throw IoError(str_cat(prefix, ": weight_map tensor ", single_quoted(name),
                            ": expected a shard file name, got ", describe_json(shard)));
    }
    const std::string& file = shard.get_ref<const std::string&>();
    if (!is_plain_file_name(file)) {
      throw IoError(str_cat(prefix, ": weight_map tensor ", single_quoted(name), " -> ", single_quoted(file),
                            ": expected a plain file name inside the checkpoint directory"));
    }
    shard_by_tensor.emplace(name, file);
    index_by_shard.emplace(file, 0);
  }
  for (auto& [file, position] : index_by_shard) {
    position = checkpoint.shard_files.size();
    checkpoint.shard_files.push_back(file);
  }
  for (const auto& [name, file] : shard_by_tensor) checkpoint.shard_of.emplace(name, index_by_shard.at(file));
  checkpoint.opened.resize(checkpoint.shard_files.size());
}

}  // namespace

struct SafetensorsCheckpoint::Impl : CheckpointState {};

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::filesystem::path& directory) {
  auto impl = std::make_shared<Impl>();
  impl->directory = directory;
  impl->prefix = str_cat("[safetensors] checkpoint ", directory.string());
  std::error_code error;
  if (!std::filesystem::is_directory(directory, error)) {
    throw IoError(str_cat(impl->prefix, ": expected a directory holding ", kSingleFile, " or ", kIndexFile,
                          ", got ",
                          std::filesystem::exists(directory, error) ? "something else" : "nothing there"));
  }
  const std::filesystem::path index_path = directory / kIndexFile;
  const std::filesystem::path single_path = directory / kSingleFile;
  if (is_existing_file(index_path)) {
    read_index(*impl, index_path);
  } else if (is_existing_file(single_path)) {
    // One file: open it now, since its header is the only list of names.
    SafetensorsFile file = SafetensorsFile::open(single_path);
    impl->shard_files.push_back(kSingleFile);
    for (const std::string& name : file.names()) impl->shard_of.emplace(name, 0);
    impl->opened.emplace_back(std::move(file));
  } else {
    throw IoError(
        str_cat(impl->prefix, ": expected ", kSingleFile, " or ", kIndexFile, " in it, got neither"));
  }
  return SafetensorsCheckpoint(std::move(impl));
}

const std::filesystem::path& SafetensorsCheckpoint::directory() const {
  return impl_->directory;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> names;
  names.reserve(impl_->shard_of.size());
  for (const auto& [name, shard] : impl_->shard_of) names.push_back(name);
  return names;
}

bool SafetensorsCheckpoint::contains(std::string_view name) const {
  return impl_->shard_of.find(name) != impl_->shard_of.end();
}

std::filesystem::path SafetensorsCheckpoint::shard_of(std::string_view name) const {
  return impl_->directory / impl_->shard_files[impl_->shard_index(name)];
}

std::size_t SafetensorsCheckpoint::num_shards() const {
  return impl_->shard_files.size();
}

std::size_t SafetensorsCheckpoint::num_open_shards() const {
  const std::lock_guard<std::mutex> lock(impl_->mutex);
  std::size_t count = 0;
  for (const std::optional<SafetensorsFile>& slot : impl_->opened) count += slot.has_value() ? 1 : 0;
  return count;
}

const SafetensorsFile& SafetensorsCheckpoint::file_of(std::string_view name) const {
  const std::size_t index = impl_->shard_index(name);
  const SafetensorsFile& file = impl_->shard(index);
  if (!file.contains(name)) {
    throw IoError(str_cat(impl_->prefix, ": ", kIndexFile, " puts tensor ", single_quoted(name), " in ",
                          single_quoted(impl_->shard_files[index]),
                          ": expected that shard to hold it, but it does not"));
  }
  return file;
}

const SafetensorsTensorInfo& SafetensorsCheckpoint::info(std::string_view name) const {
  return file_of(name).info(name);
}

TensorView SafetensorsCheckpoint::view(std::string_view name) const {
  return file_of(name).view(name);
}

Tensor SafetensorsCheckpoint::load(std::string_view name) const {
  return file_of(name).load(name);
}

Tensor SafetensorsCheckpoint::load_as(std::string_view name, DType dtype) const {
  return file_of(name).load_as(name, dtype);
}

}  // namespace fusedmoe
