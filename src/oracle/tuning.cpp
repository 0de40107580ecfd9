// The tune file: {"fusedmoe_tune": 1, "entries": [{backend, device, dtype, experts, hidden, intermediate,
// top_k, buckets: [{max_tokens, choice, time_ms}, ...]}, ...]}.
#include "oracle/tuning.hpp"

#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <type_traits>

#include "core/check.hpp"
#include "core/env.hpp"

namespace fusedmoe {

namespace {

constexpr int kFormatVersion = 1;

template <class T>
T field(const nlohmann::json& object, const char* name, const std::string& where) {
  const auto it = object.find(name);
  FUSEDMOE_CHECK(it != object.end(), "[tune] ", where, ": missing field '", name, "'");
  if constexpr (std::is_integral_v<T>) {
    // nlohmann's get<int> would cast a float or a wider integer (4294967304 -> 8; 1e30: undefined).
    const bool in_range =
        it->is_number_integer() &&
        (it->is_number_unsigned()
             ? it->template get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())
             : it->template get<std::int64_t>() >= std::numeric_limits<T>::min() &&
                   it->template get<std::int64_t>() <= std::numeric_limits<T>::max());
    FUSEDMOE_CHECK(in_range, "[tune] ", where, ": field '", name, "' must be an integer from ",
                   std::numeric_limits<T>::min(), " to ", std::numeric_limits<T>::max(), ", got ",
                   it->dump());
  }
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw InvalidArgument(
        str_cat("[tune] ", where, ": field '", name, "' has the wrong type (", it->dump(), ")"));
  }
}

}  // namespace

const std::string& TuneEntry::choice_for(std::int64_t tokens) const {
  FUSEDMOE_ASSERT(!buckets.empty());
  for (const TuneBucket& bucket : buckets) {
    if (tokens <= bucket.max_tokens) return bucket.choice;
  }
  return buckets.back().choice;
}

TuneTable TuneTable::parse(const std::string& text, const std::string& source) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& error) {
    throw InvalidArgument(str_cat("[tune] ", source, ": not JSON: ", error.what()));
  }
  FUSEDMOE_CHECK(root.is_object(), "[tune] ", source, ": expected a JSON object at the top");
  const int version = field<int>(root, "fusedmoe_tune", source);
  FUSEDMOE_CHECK(version == kFormatVersion, "[tune] ", source, ": format version ", version,
                 "; this fusedmoe reads ", kFormatVersion, " (re-run `fusedmoe tune`)");
  const auto entries = field<nlohmann::json>(root, "entries", source);
  FUSEDMOE_CHECK(entries.is_array(), "[tune] ", source, ": 'entries' must be an array");
  TuneTable table;
  for (std::size_t index = 0; index < entries.size(); ++index) {
    const nlohmann::json& item = entries[index];
    const std::string where = str_cat(source, " entry ", index);
    FUSEDMOE_CHECK(item.is_object(), "[tune] ", where, ": expected an object");
    TuneEntry entry;
    entry.key.backend = field<std::string>(item, "backend", where);
    entry.key.device_name = field<std::string>(item, "device", where);
    try {
      entry.key.dtype = parse_dtype(field<std::string>(item, "dtype", where));
    } catch (const InvalidArgument& error) {
      throw InvalidArgument(str_cat("[tune] ", where, ": ", error.what()));
    }
    entry.key.num_local_experts = field<std::int64_t>(item, "experts", where);
    entry.key.hidden_size = field<std::int64_t>(item, "hidden", where);
    entry.key.intermediate_size = field<std::int64_t>(item, "intermediate", where);
    entry.key.top_k = field<int>(item, "top_k", where);
    const auto buckets = field<nlohmann::json>(item, "buckets", where);
    FUSEDMOE_CHECK(buckets.is_array() && !buckets.empty(), "[tune] ", where,
                   ": 'buckets' must be a non-empty array");
    for (std::size_t bucket_index = 0; bucket_index < buckets.size(); ++bucket_index) {
      const nlohmann::json& bucket_json = buckets[bucket_index];
      const std::string bucket_where = str_cat(where, " bucket ", bucket_index);
      FUSEDMOE_CHECK(bucket_json.is_object(), "[tune] ", bucket_where, ": expected an object");
      TuneBucket bucket;
      bucket.max_tokens = field<std::int64_t>(bucket_json, "max_tokens", bucket_where);
      bucket.choice = field<std::string>(bucket_json, "choice", bucket_where);
      bucket.time_ms =
          bucket_json.contains("time_ms") ? field<double>(bucket_json, "time_ms", bucket_where) : 0.0;
      FUSEDMOE_CHECK(bucket.max_tokens >= 1, "[tune] ", bucket_where, ": max_tokens ", bucket.max_tokens,
                     ": expected >= 1");
      FUSEDMOE_CHECK(entry.buckets.empty() || bucket.max_tokens > entry.buckets.back().max_tokens, "[tune] ",
                     bucket_where, ": buckets must be in ascending max_tokens (", bucket.max_tokens,
                     " after ", entry.buckets.empty() ? 0 : entry.buckets.back().max_tokens, ")");
      entry.buckets.push_back(std::move(bucket));
    }
    table.put(std::move(entry));
  }
  return table;
}

TuneTable TuneTable::load(const std::string& path) {
  std::ifstream file(path);
  FUSEDMOE_CHECK(file.good(), "[tune] cannot read '", path,
                 "' (FUSEDMOE_TUNE_FILE or --output of `fusedmoe tune`)");
  std::ostringstream text;
  text << file.rdbuf();
  return parse(text.str(), path);
}

std::string TuneTable::to_json() const {
  nlohmann::json entries = nlohmann::json::array();
  for (const TuneEntry& entry : entries_) {
    nlohmann::json buckets = nlohmann::json::array();
    for (const TuneBucket& bucket : entry.buckets) {
      buckets.push_back(
          {{"max_tokens", bucket.max_tokens}, {"choice", bucket.choice}, {"time_ms", bucket.time_ms}});
    }
    entries.push_back({{"backend", entry.key.backend},
                       {"device", entry.key.device_name},
                       {"dtype", std::string(to_string(entry.key.dtype))},
                       {"experts", entry.key.num_local_experts},
                       {"hidden", entry.key.hidden_size},
                       {"intermediate", entry.key.intermediate_size},
                       {"top_k", entry.key.top_k},
                       {"buckets", buckets}});
  }
  const nlohmann::json root = {{"fusedmoe_tune", kFormatVersion}, {"entries", entries}};
  return root.dump(2) + "\n";
}

void TuneTable::save(const std::string& path) const {
  // Written next to the target, then renamed over it: a crash never leaves a truncated table behind.
  const std::string temporary = path + ".tmp";
  {
    std::ofstream file(temporary, std::ios::trunc);
    FUSEDMOE_CHECK(file.good(), "[tune] cannot write '", temporary, "' (for '", path, "')");
    file << to_json();
    file.flush();
    FUSEDMOE_CHECK(file.good(), "[tune] writing '", temporary, "' failed");
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  FUSEDMOE_CHECK(!error, "[tune] cannot replace '", path, "': ", error.message());
}

const TuneEntry* TuneTable::find(const TuneKey& key) const {
  for (const TuneEntry& entry : entries_) {
    if (entry.key == key) return &entry;
  }
  return nullptr;
}

void TuneTable::put(TuneEntry entry) {
  for (TuneEntry& existing : entries_) {
    if (existing.key == entry.key) {
      existing = std::move(entry);
      return;
    }
  }
  entries_.push_back(std::move(entry));
}

std::optional<TuneEntry> tuned_entry_from_env(const TuneKey& key) {
  const std::optional<std::string> path = env_string("FUSEDMOE_TUNE_FILE");
  if (!path) return std::nullopt;
  const TuneTable table = TuneTable::load(*path);
  const TuneEntry* entry = table.find(key);
  if (entry == nullptr) return std::nullopt;
  return *entry;
}

}  // namespace fusedmoe
