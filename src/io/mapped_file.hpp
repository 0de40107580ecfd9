// A read-only memory mapping of a whole regular file (RAII, move-only).
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>

namespace fusedmoe {

class MappedFile {
 public:
  MappedFile() = default;
  // Maps `path` with PROT_READ / MAP_PRIVATE. An empty file gives an empty span. Throws IoError for a
  // missing, unreadable or non-regular file (directories, FIFOs and devices are refused without blocking).
  static MappedFile open(const std::filesystem::path& path);

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void release() noexcept;

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace fusedmoe
