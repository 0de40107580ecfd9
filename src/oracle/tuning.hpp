// Measured choices per token count: `fusedmoe tune` times a backend's candidate configurations on the
// device at hand and stores, per model shape and device, the fastest one for each token bucket in a JSON
// file; backends read it back (FUSEDMOE_TUNE_FILE) when they are made. A shape the file does not know
// keeps the backend's built-in heuristic.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fusedmoe/dtype.hpp"

namespace fusedmoe {

// What a tuned entry is for: one backend on one device model for one expert shape.
struct TuneKey {
  std::string backend;      // "cuda_fused"
  std::string device_name;  // "NVIDIA H100 80GB HBM3" (Platform's device name)
  DType dtype = DType::bf16;
  std::int64_t num_local_experts = 0, hidden_size = 0, intermediate_size = 0;
  int top_k = 0;
  friend bool operator==(const TuneKey&, const TuneKey&) = default;
};

// Calls with at most max_tokens tokens (and more than the previous bucket's) use `choice`.
struct TuneBucket {
  std::int64_t max_tokens = 0;
  std::string choice;    // backend-specific: "stream", "m64", ...
  double time_ms = 0.0;  // what it measured at max_tokens
};

struct TuneEntry {
  TuneKey key;
  std::vector<TuneBucket> buckets;  // ascending max_tokens, at least one
  // The bucket's choice for `tokens`; beyond the last bucket, the last one's.
  const std::string& choice_for(std::int64_t tokens) const;
};

class TuneTable {
 public:
  // Throws InvalidArgument naming `source` and what is wrong (bad JSON, a missing or mistyped field,
  // buckets not ascending, an unknown dtype).
  static TuneTable parse(const std::string& text, const std::string& source);
  // Reads and parses `path`; throws InvalidArgument when it cannot be read.
  static TuneTable load(const std::string& path);
  std::string to_json() const;
  // Writes to_json() to `path` (replacing it).
  void save(const std::string& path) const;

  const TuneEntry* find(const TuneKey& key) const;
  // Adds `entry`, replacing any entry with the same key.
  void put(TuneEntry entry);
  const std::vector<TuneEntry>& entries() const { return entries_; }

 private:
  std::vector<TuneEntry> entries_;
};

// The entry for `key` in the file FUSEDMOE_TUNE_FILE names; nullopt when the variable is unset or the file
// has no such entry. A file that is set but unreadable or malformed is an error (InvalidArgument).
std::optional<TuneEntry> tuned_entry_from_env(const TuneKey& key);

}  // namespace fusedmoe
