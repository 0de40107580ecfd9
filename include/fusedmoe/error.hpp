// Errors are part of fusedmoe's API: every failure a user can cause is an exception whose message
// names the component, the argument, the value and what would have been accepted.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace fusedmoe {

enum class ErrorKind {
  invalid_argument,  // a shape, dtype, config value or id the caller passed is not acceptable
  unsupported,       // valid request, but no build / backend / device here can do it
  io,                // a file could not be read, or its contents are malformed
  cuda,              // a CUDA runtime or library call failed
  comm,              // a communication library (MPI, NCCL) call failed
  internal,          // a bug in fusedmoe: please report it
};

std::string_view to_string(ErrorKind kind);

// The one exception type fusedmoe throws; catch the subclasses to select by kind.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

class InvalidArgument : public Error {
 public:
  explicit InvalidArgument(const std::string& message) : Error(ErrorKind::invalid_argument, message) {}
};
class Unsupported : public Error {
 public:
  explicit Unsupported(const std::string& message) : Error(ErrorKind::unsupported, message) {}
};
class IoError : public Error {
 public:
  explicit IoError(const std::string& message) : Error(ErrorKind::io, message) {}
};
class CudaError : public Error {
 public:
  explicit CudaError(const std::string& message) : Error(ErrorKind::cuda, message) {}
};
class CommError : public Error {
 public:
  explicit CommError(const std::string& message) : Error(ErrorKind::comm, message) {}
};
class InternalError : public Error {
 public:
  explicit InternalError(const std::string& message) : Error(ErrorKind::internal, message) {}
};

}  // namespace fusedmoe
