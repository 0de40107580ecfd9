// Reading and writing safetensors files and Hugging Face checkpoint directories. Every file is fully
// validated when it is opened, so a malformed or hostile file is an IoError, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fusedmoe/dtype.hpp"
#include "fusedmoe/tensor.hpp"

namespace fusedmoe {

// The largest JSON header accepted (the format's own cap).
inline constexpr std::uint64_t kSafetensorsMaxHeaderBytes = std::uint64_t{100} << 20;

// The format's name of a dtype: "F32", "F16", "BF16", "I32", "I64", "U8".
std::string_view safetensors_dtype_name(DType dtype);

struct SafetensorsTensorInfo {
  std::string name;
  DType dtype = DType::fp32;
  // As stored: may be empty (a scalar) or longer than kMaxRank; view() and load() need 1 to kMaxRank dims.
  std::vector<std::int64_t> shape;
  // Byte range [data_begin, data_end) relative to the start of the data region.
  std::uint64_t data_begin = 0;
  std::uint64_t data_end = 0;

  std::int64_t numel() const;  // 1 for a scalar; always fits for an info a SafetensorsFile returns
  std::uint64_t nbytes() const { return data_end - data_begin; }
};

// One validated safetensors file. Copies are cheap and share the mapping; views stay valid while any
// copy lives. All members are const and safe to call from several threads.
//
// Validation at open time (each violation an IoError naming the file, the tensor and the rule):
// the 8-byte header length (1 .. kSafetensorsMaxHeaderBytes and within the file), UTF-8 and JSON
// syntax, unique tensor names, entries of exactly {dtype, shape, data_offsets}, a supported dtype,
// non-negative dims whose element and byte counts fit 64 bits, data_offsets [begin, end] with
// begin <= end <= data size and end - begin == bytes of shape x dtype, and byte ranges that tile the
// data region exactly (no overlap, no gap, no trailing bytes). "__metadata__" must map strings to strings.
// Scalars (shape []) are accepted; view() and load() reject them (and rank > kMaxRank) with Unsupported.
class SafetensorsFile {
 public:
  // Memory-maps `path` read-only and validates it. Throws IoError.
  // NOTE: a file truncated by another process while mapped raises SIGBUS on access (as with any mmap).
  static SafetensorsFile open(const std::filesystem::path& path);
  // The same validation over bytes in memory (tests, fuzzing). The file keeps its own 64-byte aligned
  // copy of `bytes`, so the caller's buffer may go away afterwards; `label` names it in messages and path().
  static SafetensorsFile from_buffer(std::span<const std::byte> bytes, std::string label);

  const std::filesystem::path& path() const;
  std::vector<std::string> names() const;  // sorted
  std::size_t size() const;                // number of tensors
  bool contains(std::string_view name) const;
  // Throws IoError naming the file and the tensor when it is absent.
  const SafetensorsTensorInfo& info(std::string_view name) const;
  // "__metadata__" (empty when the file has none).
  const std::map<std::string, std::string>& metadata() const;
  // File offset of the data region (8 + header length).
  std::uint64_t data_offset() const;

  // The stored bytes of a tensor, any rank (zero-copy).
  std::span<const std::byte> raw_bytes(std::string_view name) const;
  // Zero-copy view of the stored data, valid while this file (or a copy of it) lives. The data is
  // READ-ONLY although TensorView holds a mutable pointer: writing through it faults (the mapping is
  // PROT_READ). Throws Unsupported for rank 0 or rank > kMaxRank, and when the data is not aligned to
  // its element size inside the file (use load() then).
  TensorView view(std::string_view name) const;
  // An owning, 64-byte aligned copy with the stored dtype.
  Tensor load(std::string_view name) const;
  // An owning copy converted to `dtype`: bf16, fp16 and fp32 convert among themselves (round to nearest
  // even); integer dtypes load only as themselves. Anything else throws InvalidArgument.
  Tensor load_as(std::string_view name, DType dtype) const;

 private:
  struct Impl;
  explicit SafetensorsFile(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// Collects CPU tensors and writes them as one safetensors file. Tensors are stored by decreasing
// element size, then by name, after a header padded with spaces to a multiple of 8 bytes, so every
// tensor is aligned to its element size in the file (and in a mapping of it).
class SafetensorsWriter {
 public:
  // Copies the tensor's data now. Throws InvalidArgument for an empty, "__metadata__", non-UTF-8 or
  // duplicate name, and for an undefined or non-CPU tensor.
  void add(std::string name, const TensorView& tensor);
  // Sets (or replaces) one "__metadata__" entry. Throws InvalidArgument for non-UTF-8 text.
  void set_metadata(std::string key, std::string value);
  std::size_t size() const { return tensors_.size(); }

  // The whole file in memory.
  std::vector<std::byte> serialize() const;
  // Writes a temporary file next to `path`, syncs it and renames it over `path`, so readers never see
  // a partial file. Throws IoError.
  void write(const std::filesystem::path& path) const;

 private:
  struct Plan;  // header text and tensor order, shared by serialize() and write()
  Plan plan() const;

  std::map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A Hugging Face checkpoint directory: model.safetensors, or shards listed by
// model.safetensors.index.json ("weight_map": tensor name -> shard file in the same directory). Shards are
// opened lazily, the first time one of their tensors is asked for, so reading one layer never maps the
// whole checkpoint. Copies share the opened shards; all members are const and thread-safe. Views stay
// valid while the checkpoint (or a copy of it) lives.
class SafetensorsCheckpoint {
 public:
  // Throws IoError when the directory holds neither file, or the index is malformed.
  static SafetensorsCheckpoint open(const std::filesystem::path& directory);

  const std::filesystem::path& directory() const;
  std::vector<std::string> names() const;  // sorted
  bool contains(std::string_view name) const;
  // The shard file a tensor lives in (without opening it). Throws IoError when absent.
  std::filesystem::path shard_of(std::string_view name) const;
  std::size_t num_shards() const;
  std::size_t num_open_shards() const;  // how many shards have been mapped so far

  // As SafetensorsFile's, opening the tensor's shard on first use. IoError also when the shard does not
  // hold a tensor that the index puts there.
  const SafetensorsTensorInfo& info(std::string_view name) const;
  TensorView view(std::string_view name) const;
  Tensor load(std::string_view name) const;
  Tensor load_as(std::string_view name, DType dtype) const;
  // The (opened) shard holding `name`.
  const SafetensorsFile& file_of(std::string_view name) const;

 private:
  struct Impl;
  explicit SafetensorsCheckpoint(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace fusedmoe
