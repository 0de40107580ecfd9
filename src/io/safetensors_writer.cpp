// SafetensorsWriter: builds the header (padded to 8 bytes, tensors ordered for alignment) and writes
// the file atomically through a temporary file and rename().
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "core/check.hpp"
#include "fusedmoe/safetensors.hpp"
#include "io/safetensors_common.hpp"

namespace fusedmoe {

using io::single_quoted;

struct SafetensorsWriter::Plan {
  std::string header;                  // 8-byte length prefix + JSON + padding
  std::vector<const Tensor*> tensors;  // in file order
};

namespace {

void check_utf8(std::string_view what, std::string_view text) {
  if (const std::optional<std::size_t> bad = io::find_invalid_utf8(text)) {
    throw InvalidArgument(str_cat("[safetensors] writer: ", what, " ", single_quoted(text),
                                  ": expected UTF-8 text, got an invalid byte at offset ", *bad));
  }
}

// Writes all of `bytes`, retrying short writes and EINTR. Returns 0 or an errno value.
int write_all(int fd, const void* data, std::size_t size) {
  const auto* cursor = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t written = ::write(fd, cursor, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    cursor += written;
    size -= static_cast<std::size_t>(written);
  }
  return 0;
}

}  // namespace

void SafetensorsWriter::add(std::string name, const TensorView& tensor) {
  FUSEDMOE_CHECK(!name.empty(), "[safetensors] writer: tensor name: expected a non-empty name, got ''");
  FUSEDMOE_CHECK(name != "__metadata__",
                 "[safetensors] writer: tensor name '__metadata__' is reserved: expected another name");
  check_utf8("tensor name", name);
  FUSEDMOE_CHECK(!tensors_.contains(name), "[safetensors] writer: tensor ", single_quoted(name),
                 " was already added: expected each name once");
  FUSEDMOE_CHECK(tensor.defined(), "[safetensors] writer: tensor ", single_quoted(name),
                 ": expected a defined tensor, got an undefined one");
  FUSEDMOE_CHECK(tensor.device().is_cpu(), "[safetensors] writer: tensor ", single_quoted(name),
                 ": expected a CPU tensor, got ", tensor.describe());
  tensors_.emplace(std::move(name), Tensor::copy_of(tensor));
}

void SafetensorsWriter::set_metadata(std::string key, std::string value) {
  check_utf8("metadata key", key);
  check_utf8("metadata value", value);
  metadata_[std::move(key)] = std::move(value);
}

SafetensorsWriter::Plan SafetensorsWriter::plan() const {
  Plan plan;
  // Larger elements first, then by name: every tensor starts aligned to its element size.
  std::vector<std::pair<const std::string*, const Tensor*>> order;
  for (const auto& [name, tensor] : tensors_) order.emplace_back(&name, &tensor);
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return dtype_size(a.second->dtype()) > dtype_size(b.second->dtype());
  });
  io::Json header = io::Json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : order) {
    const std::uint64_t end = offset + tensor->nbytes();
    header[*name] = {{"dtype", safetensors_dtype_name(tensor->dtype())},
                     {"shape", std::vector<std::int64_t>(tensor->shape().begin(), tensor->shape().end())},
                     {"data_offsets", {offset, end}}};
    offset = end;
    plan.tensors.push_back(tensor);
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');     // the format allows trailing spaces
  if (json.size() > kSafetensorsMaxHeaderBytes) {  // readers (this one too) refuse such a file
    throw InvalidArgument(str_cat("[safetensors] the header of ", plan.tensors.size(), " tensors is ",
                                  json.size(), " bytes: the format allows at most ",
                                  kSafetensorsMaxHeaderBytes,
                                  " (write fewer tensors or shorter names or metadata per file)"));
  }
  std::uint64_t length = json.size();
  plan.header.resize(8);
  for (std::size_t index = 0; index < 8; ++index) {
    plan.header[index] = static_cast<char>(length & 0xff);
    length >>= 8;
  }
  plan.header += json;
  return plan;
}

std::vector<std::byte> SafetensorsWriter::serialize() const {
  const Plan layout = plan();
  std::size_t total = layout.header.size();
  for (const Tensor* tensor : layout.tensors) total += tensor->nbytes();
  std::vector<std::byte> bytes(total);
  std::memcpy(bytes.data(), layout.header.data(), layout.header.size());
  std::size_t offset = layout.header.size();
  for (const Tensor* tensor : layout.tensors) {
    if (tensor->nbytes() > 0) std::memcpy(bytes.data() + offset, tensor->data(), tensor->nbytes());
    offset += tensor->nbytes();
  }
  return bytes;
}

void SafetensorsWriter::write(const std::filesystem::path& path) const {
  const Plan layout = plan();
  static std::atomic<unsigned> counter{0};
  std::filesystem::path temporary = path;
  temporary += str_cat(".tmp.", ::getpid(), ".", counter.fetch_add(1));
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw IoError(str_cat("[safetensors] ", path.string(), ": cannot create ", temporary.string(), ": ",
                          std::generic_category().message(errno)));
  }
  int error = write_all(fd, layout.header.data(), layout.header.size());
  for (const Tensor* tensor : layout.tensors) {
    if (error != 0) break;
    error = write_all(fd, tensor->data(), tensor->nbytes());
  }
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error == 0 && std::rename(temporary.c_str(), path.c_str()) != 0) error = errno;
  if (error != 0) {
    ::unlink(temporary.c_str());
    throw IoError(
        str_cat("[safetensors] ", path.string(), ": cannot write: ", std::generic_category().message(error)));
  }
}

}  // namespace fusedmoe
