// POSIX implementation of MappedFile.
#include "io/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <limits>
#include <system_error>
#include <utility>

#include "core/check.hpp"

namespace fusedmoe {

namespace {

[[noreturn]] void throw_errno(const std::filesystem::path& path, const char* what, int error) {
  throw IoError(str_cat("[io] ", path.string(), ": ", what, ": ", std::generic_category().message(error)));
}

// Closes a descriptor on every path out of open().
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

MappedFile MappedFile::open(const std::filesystem::path& path) {
  // NOTE: O_NONBLOCK keeps open() from hanging on a FIFO; it has no effect on regular files.
  int raw_fd = -1;
  do {
    raw_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  } while (raw_fd < 0 && errno == EINTR);
  if (raw_fd < 0) throw_errno(path, "cannot open", errno);
  const FileDescriptor fd(raw_fd);

  struct stat status {};
  if (::fstat(fd.get(), &status) != 0) throw_errno(path, "cannot stat", errno);
  if (!S_ISREG(status.st_mode)) {
    throw IoError(str_cat("[io] ", path.string(), ": expected a regular file, got ",
                          S_ISDIR(status.st_mode) ? "a directory" : "a special file"));
  }
  if (status.st_size < 0 ||
      static_cast<std::uintmax_t>(status.st_size) > std::numeric_limits<std::size_t>::max()) {
    throw IoError(str_cat("[io] ", path.string(), ": file size ", status.st_size, " cannot be mapped"));
  }

  MappedFile file;
  file.path_ = path;
  file.size_ = static_cast<std::size_t>(status.st_size);
  if (file.size_ == 0) return file;  // mmap refuses length 0; an empty span is the right answer anyway
  void* address = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (address == MAP_FAILED) {
    file.size_ = 0;
    throw_errno(path, "cannot mmap", errno);
  }
  file.data_ = static_cast<const std::byte*>(address);
  return file;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() {
  release();
}

void MappedFile::release() noexcept {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace fusedmoe
