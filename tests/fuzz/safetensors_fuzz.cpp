// libFuzzer target: parses arbitrary bytes as a safetensors file (from memory), exercises every accessor,
// and round-trips what it accepted through SafetensorsWriter. Any crash, sanitizer report, exception
// other than the documented ones, or broken invariant is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fusedmoe/error.hpp"
#include "fusedmoe/safetensors.hpp"

namespace {

using namespace fusedmoe;

[[noreturn]] void fail(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "safetensors_fuzz: invariant broken: %s %s\n", what, detail.c_str());
  std::abort();
}

// Reads every byte, so that ASan sees any out-of-bounds range.
std::uint64_t checksum(std::span<const std::byte> bytes) {
  std::uint64_t sum = 0;
  for (std::byte value : bytes) sum = sum * 31 + static_cast<std::uint64_t>(value);
  return sum;
}

bool viewable(const SafetensorsTensorInfo& info) {
  return !info.shape.empty() && info.shape.size() <= static_cast<std::size_t>(kMaxRank);
}

void exercise(const SafetensorsFile& file, std::span<const std::byte> input) {
  const std::vector<std::string> names = file.names();
  if (names.size() != file.size()) fail("names().size() != size()");
  for (std::size_t index = 1; index < names.size(); ++index) {
    if (!(names[index - 1] < names[index])) fail("names() not sorted and unique");
  }
  if (file.data_offset() > input.size()) fail("data_offset past the input");
  for (const auto& [key, value] : file.metadata()) (void)checksum(std::as_bytes(std::span(value)));
  (void)file.contains("");
  (void)file.contains("__metadata__");
  try {
    (void)file.info("\xff no such tensor");
    if (!file.contains("\xff no such tensor")) fail("info() of an absent tensor did not throw");
  } catch (const IoError&) {
  }

  std::uint64_t covered = 0;
  for (const std::string& name : names) {
    if (!file.contains(name)) fail("contains() false for a listed name", name);
    const SafetensorsTensorInfo& info = file.info(name);
    if (info.name != name) fail("info().name differs", name);
    if (info.data_begin > info.data_end) fail("inverted range", name);
    covered += info.nbytes();
    const std::span<const std::byte> raw = file.raw_bytes(name);
    if (raw.size() != info.nbytes()) fail("raw_bytes size", name);
    if (!raw.empty()) {
      // The copy inside the file object must hold the input's bytes at the same offsets.
      const std::uint64_t begin = file.data_offset() + info.data_begin;
      if (begin + raw.size() > input.size()) fail("raw_bytes past the input", name);
      if (std::memcmp(raw.data(), input.data() + begin, raw.size()) != 0) fail("raw_bytes differ", name);
    }
    (void)checksum(raw);
    if (static_cast<std::uint64_t>(info.numel()) * dtype_size(info.dtype) != info.nbytes())
      fail("numel", name);

    try {
      const TensorView view = file.view(name);
      if (view.nbytes() != info.nbytes()) fail("view nbytes", name);
      (void)checksum({static_cast<const std::byte*>(view.data()), view.nbytes()});
    } catch (const Unsupported&) {
      // rank 0, rank > kMaxRank, or misaligned data: all documented.
    }
    try {
      const Tensor loaded = file.load(name);
      if (loaded.nbytes() != info.nbytes()) fail("load nbytes", name);
      if (info.nbytes() > 0 && std::memcmp(loaded.data(), raw.data(), raw.size()) != 0)
        fail("load bytes", name);
    } catch (const Unsupported&) {
      if (viewable(info)) fail("load() refused a viewable tensor", name);
    }
    for (DType target : {DType::fp32, DType::bf16, DType::fp16, DType::int32, DType::int64, DType::uint8}) {
      try {
        const Tensor converted = file.load_as(name, target);
        if (converted.dtype() != target || converted.numel() != info.numel()) fail("load_as result", name);
      } catch (const Unsupported&) {
        if (viewable(info)) fail("load_as() refused a viewable tensor for its rank", name);
      } catch (const InvalidArgument&) {
        const bool both_floating = is_floating(info.dtype) && is_floating(target);
        if (both_floating || info.dtype == target) fail("load_as() refused a valid conversion", name);
      }
    }
  }
  if (file.data_offset() + covered != input.size()) fail("tensors do not tile the data region");

  // Round trip: what was accepted must write and read back identically.
  SafetensorsWriter writer;
  std::vector<std::string> written;
  for (const std::string& name : names) {
    const SafetensorsTensorInfo& info = file.info(name);
    if (!viewable(info) || name.empty()) continue;
    writer.add(name, file.load(name));
    written.push_back(name);
  }
  for (const auto& [key, value] : file.metadata()) writer.set_metadata(key, value);
  const std::vector<std::byte> bytes = writer.serialize();
  const SafetensorsFile again = SafetensorsFile::from_buffer(bytes, "round-trip");
  if (again.names() != written) fail("round trip names");
  if (again.metadata() != file.metadata()) fail("round trip metadata");
  for (const std::string& name : written) {
    const std::span<const std::byte> before = file.raw_bytes(name);
    const std::span<const std::byte> after = again.raw_bytes(name);
    if (before.size() != after.size() ||
        (before.size() > 0 && std::memcmp(before.data(), after.data(), before.size()))) {
      fail("round trip bytes", name);
    }
    if (again.info(name).shape != file.info(name).shape || again.info(name).dtype != file.info(name).dtype) {
      fail("round trip info", name);
    }
    (void)again.view(name);  // the writer aligns every tensor, so a view must always work
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
  std::optional<SafetensorsFile> file;
  try {
    file.emplace(SafetensorsFile::from_buffer(input, "fuzz-input"));
  } catch (const IoError&) {
    return 0;  // rejected cleanly; any other exception type escapes and is reported as a crash
  }
  exercise(*file, input);
  return 0;
}
