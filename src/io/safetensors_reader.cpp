// SafetensorsFile: maps a file (or copies a buffer), validates the whole header and byte layout once,
// then serves zero-copy views and converted copies.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/allocator.hpp"
#include "core/check.hpp"
#include "fusedmoe/safetensors.hpp"
#include "io/mapped_file.hpp"
#include "io/safetensors_common.hpp"

namespace fusedmoe {

using io::describe_json;
using io::Json;
using io::single_quoted;

std::int64_t SafetensorsTensorInfo::numel() const {
  // Unsigned, so that a hand-made info cannot overflow into UB; a validated one always fits int64.
  std::uint64_t count = 1;
  for (std::int64_t dim : shape) count *= static_cast<std::uint64_t>(dim);
  return static_cast<std::int64_t>(count);
}

namespace {

// Everything known about one file. SafetensorsFile::Impl (private) derives from it so that the helpers
// below can name it.
struct FileState {
  std::filesystem::path path;
  std::string prefix;                // "[safetensors] <file>" for every message
  MappedFile mapping;                // open(): the whole file, read-only
  std::shared_ptr<void> owned;       // from_buffer(): our aligned copy
  std::span<const std::byte> bytes;  // the whole file, from either
  std::uint64_t data_offset = 0;
  std::map<std::string, SafetensorsTensorInfo, std::less<>> tensors;
  std::map<std::string, std::string> metadata;
};

constexpr std::uint64_t kMaxInt64 = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t dim = 0; dim < shape.size(); ++dim) text += (dim ? ", " : "") + std::to_string(shape[dim]);
  return text + "]";
}

// A JSON number that is an integer in [0, 2^64), or nullopt.
std::optional<std::uint64_t> as_unsigned(const Json& value) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (value.is_number_integer()) {
    const auto signed_value = value.get<std::int64_t>();
    if (signed_value >= 0) return static_cast<std::uint64_t>(signed_value);
  }
  return std::nullopt;
}

void parse_metadata(const Json& value, FileState& file);
void parse_entry(const std::string& name, const Json& value, std::uint64_t data_size, FileState& file);
void check_tiling(const FileState& file, std::uint64_t data_size);

void parse(FileState& file) {
  const std::string& prefix = file.prefix;
  const std::span<const std::byte> bytes = file.bytes;
  if (bytes.size() < 8) {
    throw IoError(str_cat(prefix, ": file is too short: expected at least 8 bytes (the header length), got ",
                          bytes.size()));
  }
  std::uint64_t header_size = 0;
  for (int index = 7; index >= 0; --index) {
    header_size = (header_size << 8) | static_cast<std::uint64_t>(bytes[static_cast<std::size_t>(index)]);
  }
  const std::uint64_t file_size = bytes.size();
  if (header_size == 0) {
    throw IoError(
        str_cat(prefix, ": header length: expected 1 to ", kSafetensorsMaxHeaderBytes, " bytes, got 0"));
  }
  if (header_size > kSafetensorsMaxHeaderBytes) {
    throw IoError(str_cat(prefix, ": header length: expected at most ", kSafetensorsMaxHeaderBytes,
                          " bytes (the format's cap), got ", header_size));
  }
  if (header_size > file_size - 8) {
    throw IoError(str_cat(prefix, ": header length runs past the end of the file: expected at most ",
                          file_size - 8, " bytes (file size ", file_size, " - 8), got ", header_size));
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8,
                              static_cast<std::size_t>(header_size));
  if (const std::optional<std::size_t> bad = io::find_invalid_utf8(text)) {
    throw IoError(str_cat(prefix, ": header is not valid UTF-8: expected UTF-8 text, got byte 0x", std::hex,
                          static_cast<unsigned>(static_cast<unsigned char>(text[*bad])), std::dec,
                          " at header offset ", *bad));
  }
  // Three levels: the header object, a tensor entry (or __metadata__), its shape or data_offsets array.
  const Json header = io::parse_json_strict(text, prefix + ": header", "tensor name", 3);
  if (!header.is_object()) {
    throw IoError(str_cat(prefix, ": header: expected a JSON object, got ", describe_json(header)));
  }
  file.data_offset = 8 + header_size;
  const std::uint64_t data_size = file_size - file.data_offset;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      parse_metadata(value, file);
    } else {
      parse_entry(name, value, data_size, file);
    }
  }
  check_tiling(file, data_size);
}

void parse_metadata(const Json& value, FileState& file) {
  if (!value.is_object()) {
    throw IoError(str_cat(file.prefix, ": __metadata__: expected an object of string values, got ",
                          describe_json(value)));
  }
  for (const auto& [key, entry] : value.items()) {
    if (!entry.is_string()) {
      throw IoError(str_cat(file.prefix, ": __metadata__ key ", single_quoted(key),
                            ": expected a string value, got ", describe_json(entry)));
    }
    file.metadata.emplace(key, entry.get<std::string>());
  }
}

void parse_entry(const std::string& name, const Json& value, std::uint64_t data_size, FileState& file) {
  const std::string where = str_cat(file.prefix, ": tensor ", single_quoted(name));
  if (!value.is_object()) {
    throw IoError(str_cat(where, ": expected an object with dtype, shape and data_offsets, got ",
                          describe_json(value)));
  }
  for (const auto& [key, unused] : value.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      throw IoError(str_cat(where, " has unknown key ", single_quoted(key),
                            ": expected only dtype, shape and data_offsets"));
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(key)) {
      throw IoError(str_cat(where, " is missing '", key, "': expected dtype, shape and data_offsets"));
    }
  }
  SafetensorsTensorInfo info;
  info.name = name;

  // dtype
  const Json& dtype = value["dtype"];
  if (!dtype.is_string()) {
    throw IoError(str_cat(where, " dtype: expected a string, got ", describe_json(dtype)));
  }
  const std::string& dtype_name = dtype.get_ref<const std::string&>();
  const std::optional<DType> parsed_dtype = io::dtype_from_safetensors(dtype_name);
  if (!parsed_dtype) {
    throw IoError(str_cat(where, ": ", io::is_known_safetensors_dtype(dtype_name) ? "unsupported" : "unknown",
                          " dtype ", single_quoted(dtype_name), ": supported are ",
                          io::supported_safetensors_dtypes()));
  }
  info.dtype = *parsed_dtype;

  // shape: non-negative dims whose element and byte counts fit
  const Json& shape = value["shape"];
  if (!shape.is_array()) {
    throw IoError(
        str_cat(where, " shape: expected an array of non-negative integers, got ", describe_json(shape)));
  }
  std::uint64_t count = 1;
  bool overflow = false;
  for (std::size_t dim = 0; dim < shape.size(); ++dim) {
    const Json& size = shape[dim];
    const std::optional<std::uint64_t> parsed = as_unsigned(size);
    if (!parsed) {
      throw IoError(
          str_cat(where, " shape[", dim, "]: expected a non-negative integer, got ", describe_json(size)));
    }
    if (*parsed > kMaxInt64) {
      throw IoError(str_cat(where, " shape[", dim, "]: expected at most ", kMaxInt64, ", got ", *parsed));
    }
    info.shape.push_back(static_cast<std::int64_t>(*parsed));
    // Once the count is 0 it stays 0; otherwise it must stay within int64.
    if (*parsed == 0) {
      count = 0;
    } else if (count != 0 && count > kMaxInt64 / *parsed) {
      overflow = true;
    } else {
      count *= *parsed;
    }
  }
  // NOTE: a later 0 makes the product 0, but an intermediate product past 2^63 is still refused, as
  // the format's reference implementation does, so that no prefix of the shape overflows either.
  if (overflow) {
    throw IoError(str_cat(where, " shape ", shape_text(info.shape),
                          ": element count overflows: expected at most 2^63 - 1 elements"));
  }
  const std::uint64_t element_size = dtype_size(info.dtype);
  if (count > std::numeric_limits<std::uint64_t>::max() / element_size) {
    throw IoError(str_cat(where, " shape ", shape_text(info.shape), " of ", dtype_name,
                          ": byte count overflows: expected at most 2^64 - 1 bytes"));
  }
  const std::uint64_t nbytes = count * element_size;

  // data_offsets
  const Json& offsets = value["data_offsets"];
  std::optional<std::uint64_t> begin;
  std::optional<std::uint64_t> end;
  if (offsets.is_array() && offsets.size() == 2) {
    begin = as_unsigned(offsets[0]);
    end = as_unsigned(offsets[1]);
  }
  if (!begin || !end) {
    throw IoError(str_cat(where, " data_offsets: expected two non-negative integers [begin, end], got ",
                          describe_json(offsets)));
  }
  const std::string range = str_cat("[", *begin, ", ", *end, "]");
  if (*begin > *end) {
    throw IoError(str_cat(where, " data_offsets ", range, " are inverted: expected begin <= end"));
  }
  if (*end > data_size) {
    throw IoError(str_cat(where, " data_offsets ", range, " end beyond the data region: expected end <= ",
                          data_size, " (the data region's size)"));
  }
  if (*end - *begin != nbytes) {
    throw IoError(str_cat(where, " data_offsets ", range, " span ", *end - *begin, " bytes: expected ",
                          nbytes, " for shape ", shape_text(info.shape), " of ", dtype_name));
  }
  info.data_begin = *begin;
  info.data_end = *end;
  file.tensors.emplace(name, std::move(info));
}

// The byte ranges, sorted by begin, must tile [0, data_size) exactly.
void check_tiling(const FileState& file, std::uint64_t data_size) {
  std::vector<const SafetensorsTensorInfo*> sorted;
  sorted.reserve(file.tensors.size());
  for (const auto& [name, info] : file.tensors) sorted.push_back(&info);
  std::sort(sorted.begin(), sorted.end(), [](const SafetensorsTensorInfo* a, const SafetensorsTensorInfo* b) {
    if (a->data_begin != b->data_begin) return a->data_begin < b->data_begin;
    if (a->data_end != b->data_end) return a->data_end < b->data_end;
    return a->name < b->name;
  });
  std::uint64_t cursor = 0;
  const SafetensorsTensorInfo* previous = nullptr;
  for (const SafetensorsTensorInfo* info : sorted) {
    if (info->data_begin < cursor) {
      throw IoError(str_cat(file.prefix, ": tensor ", single_quoted(info->name), " data_offsets [",
                            info->data_begin, ", ", info->data_end, "] overlap tensor ",
                            single_quoted(previous->name), " [", previous->data_begin, ", ",
                            previous->data_end, "]: expected byte ranges that do not overlap"));
    }
    if (info->data_begin > cursor) {
      throw IoError(
          str_cat(file.prefix, ": data region bytes [", cursor, ", ", info->data_begin, ") before tensor ",
                  single_quoted(info->name),
                  " belong to no tensor: expected the tensors to cover the data region without gaps"));
    }
    cursor = info->data_end;
    previous = info;
  }
  if (cursor != data_size) {
    throw IoError(str_cat(file.prefix, ": data region bytes [", cursor, ", ", data_size,
                          ") after the last tensor belong to no tensor: expected no trailing bytes"));
  }
}

void check_viewable(const FileState& file, const SafetensorsTensorInfo& info) {
  if (info.shape.empty() || info.shape.size() > static_cast<std::size_t>(kMaxRank)) {
    throw Unsupported(str_cat(file.prefix, ": tensor ", single_quoted(info.name), " shape ",
                              shape_text(info.shape), " has rank ", info.shape.size(), ": expected 1 to ",
                              kMaxRank, " dimensions (raw_bytes() reads any rank)"));
  }
}

const std::byte* data_of(const FileState& file, const SafetensorsTensorInfo& info) {
  return file.bytes.data() + file.data_offset + info.data_begin;
}

bool is_aligned(const std::byte* pointer, DType dtype) {
  return reinterpret_cast<std::uintptr_t>(pointer) % dtype_size(dtype) == 0;
}

}  // namespace

struct SafetensorsFile::Impl : FileState {};

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  auto impl = std::make_shared<Impl>();
  impl->path = path;
  impl->prefix = str_cat("[safetensors] ", path.string());
  try {
    impl->mapping = MappedFile::open(path);
  } catch (const IoError& error) {
    throw IoError(str_cat("[safetensors] ", error.what()));
  }
  impl->bytes = impl->mapping.bytes();
  parse(*impl);
  return SafetensorsFile(std::move(impl));
}

SafetensorsFile SafetensorsFile::from_buffer(std::span<const std::byte> bytes, std::string label) {
  auto impl = std::make_shared<Impl>();
  impl->path = label;
  impl->prefix = str_cat("[safetensors] ", label);
  impl->owned = allocate_device_memory(Device::cpu(), bytes.size());
  if (!bytes.empty()) std::memcpy(impl->owned.get(), bytes.data(), bytes.size());
  impl->bytes = {static_cast<const std::byte*>(impl->owned.get()), bytes.size()};
  parse(*impl);
  return SafetensorsFile(std::move(impl));
}

const std::filesystem::path& SafetensorsFile::path() const {
  return impl_->path;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> names;
  names.reserve(impl_->tensors.size());
  for (const auto& [name, info] : impl_->tensors) names.push_back(name);
  return names;
}

std::size_t SafetensorsFile::size() const {
  return impl_->tensors.size();
}

bool SafetensorsFile::contains(std::string_view name) const {
  return impl_->tensors.find(name) != impl_->tensors.end();
}

const SafetensorsTensorInfo& SafetensorsFile::info(std::string_view name) const {
  const auto found = impl_->tensors.find(name);
  if (found == impl_->tensors.end()) {
    throw IoError(str_cat(impl_->prefix, ": tensor ", single_quoted(name),
                          " is not in the file: expected one of its ", impl_->tensors.size(), " tensors"));
  }
  return found->second;
}

const std::map<std::string, std::string>& SafetensorsFile::metadata() const {
  return impl_->metadata;
}

std::uint64_t SafetensorsFile::data_offset() const {
  return impl_->data_offset;
}

std::span<const std::byte> SafetensorsFile::raw_bytes(std::string_view name) const {
  const SafetensorsTensorInfo& tensor = info(name);
  return {data_of(*impl_, tensor), static_cast<std::size_t>(tensor.nbytes())};
}

TensorView SafetensorsFile::view(std::string_view name) const {
  const SafetensorsTensorInfo& tensor = info(name);
  check_viewable(*impl_, tensor);
  const std::byte* data = data_of(*impl_, tensor);
  if (!is_aligned(data, tensor.dtype)) {
    throw Unsupported(str_cat(impl_->prefix, ": tensor ", single_quoted(tensor.name),
                              " starts at file offset ", impl_->data_offset + tensor.data_begin,
                              ": expected a multiple of ", dtype_size(tensor.dtype),
                              " (its element size) for a zero-copy view; use load()"));
  }
  // NOTE: const_cast because TensorView has no const flavour; the mapping is PROT_READ (see the header).
  return TensorView(const_cast<std::byte*>(data), tensor.dtype, tensor.shape);
}

Tensor SafetensorsFile::load(std::string_view name) const {
  const SafetensorsTensorInfo& tensor = info(name);
  check_viewable(*impl_, tensor);
  Tensor result = Tensor::empty(tensor.dtype, tensor.shape);
  if (tensor.nbytes() > 0) std::memcpy(result.data(), data_of(*impl_, tensor), tensor.nbytes());
  return result;
}

Tensor SafetensorsFile::load_as(std::string_view name, DType dtype) const {
  const SafetensorsTensorInfo& tensor = info(name);
  if (tensor.dtype == dtype) return load(name);
  const std::string_view stored = safetensors_dtype_name(tensor.dtype);
  if (!is_floating(tensor.dtype)) {
    throw InvalidArgument(str_cat(impl_->prefix, ": tensor ", single_quoted(tensor.name), " is ", stored,
                                  ": cannot load it as ", to_string(dtype), ": expected ",
                                  to_string(tensor.dtype),
                                  " (integer tensors load only as their own dtype)"));
  }
  if (!is_floating(dtype)) {
    throw InvalidArgument(str_cat(
        impl_->prefix, ": tensor ", single_quoted(tensor.name), " is ", stored, ": cannot load it as ",
        to_string(dtype), ": expected bf16, fp16 or fp32 (floating tensors convert only among these)"));
  }
  check_viewable(*impl_, tensor);
  const std::byte* data = data_of(*impl_, tensor);
  if (!is_aligned(data, tensor.dtype)) return load(name).to_dtype(dtype);  // convert from an aligned copy
  Tensor result = Tensor::empty(dtype, tensor.shape);
  convert_elements(data, tensor.dtype, result.data(), dtype, static_cast<std::size_t>(tensor.numel()));
  return result;
}

}  // namespace fusedmoe
