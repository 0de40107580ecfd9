// Shared safetensors helpers: dtype names, UTF-8 validation, message quoting, strict JSON parsing.
#include "io/safetensors_common.hpp"

#include <array>
#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "core/check.hpp"
#include "fusedmoe/safetensors.hpp"

namespace fusedmoe {

namespace {
constexpr std::array<std::pair<std::string_view, DType>, 6> kSupported = {{
    {"F32", DType::fp32},
    {"F16", DType::fp16},
    {"BF16", DType::bf16},
    {"I32", DType::int32},
    {"I64", DType::int64},
    {"U8", DType::uint8},
}};
// Every dtype the format defines (safetensors 0.5), supported here or not.
constexpr std::array<std::string_view, 21> kKnown = {
    "BOOL", "U8",   "I8",  "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4",  "F6_E2M3", "F6_E3M2", "I16",        "U16",
    "F16",  "BF16", "I32", "U32",     "F32",     "F64",     "I64", "U64",     "C64",     "F8_E4M3FNUZ"};
}  // namespace

std::string_view safetensors_dtype_name(DType dtype) {
  for (const auto& [name, candidate] : kSupported) {
    if (candidate == dtype) return name;
  }
  throw InternalError(str_cat("[safetensors] dtype ", to_string(dtype), " has no safetensors name"));
}

namespace io {

std::optional<DType> dtype_from_safetensors(std::string_view name) {
  for (const auto& [candidate, dtype] : kSupported) {
    if (candidate == name) return dtype;
  }
  return std::nullopt;
}

bool is_known_safetensors_dtype(std::string_view name) {
  for (std::string_view known : kKnown) {
    if (known == name) return true;
  }
  return false;
}

std::string_view supported_safetensors_dtypes() {
  return "F32, F16, BF16, I32, I64, U8";
}

std::optional<std::size_t> find_invalid_utf8(std::string_view text) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t size = text.size();
  std::size_t index = 0;
  while (index < size) {
    const unsigned char lead = bytes[index];
    if (lead < 0x80) {
      ++index;
      continue;
    }
    std::size_t length = 0;
    unsigned char low = 0x80;  // allowed range of the second byte
    unsigned char high = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) {
      length = 2;
    } else if (lead >= 0xe0 && lead <= 0xef) {
      length = 3;
      if (lead == 0xe0) low = 0xa0;   // overlong
      if (lead == 0xed) high = 0x9f;  // surrogates
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      length = 4;
      if (lead == 0xf0) low = 0x90;   // overlong
      if (lead == 0xf4) high = 0x8f;  // past U+10FFFF
    } else {
      return index;
    }
    if (size - index < length) return index;
    if (bytes[index + 1] < low || bytes[index + 1] > high) return index;
    for (std::size_t next = 2; next < length; ++next) {
      if ((bytes[index + next] & 0xc0) != 0x80) return index;
    }
    index += length;
  }
  return std::nullopt;
}

std::string sanitized(std::string_view text, std::size_t limit) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string result;
  const std::size_t shown = text.size() < limit ? text.size() : limit;
  for (std::size_t index = 0; index < shown; ++index) {
    const auto byte = static_cast<unsigned char>(text[index]);
    if (byte < 0x20 || byte >= 0x7f || byte == '\\') {
      result += "\\x";
      result += kHex[byte >> 4];
      result += kHex[byte & 0xf];
    } else {
      result += static_cast<char>(byte);
    }
  }
  if (shown < text.size()) result += str_cat("... (", text.size(), " bytes)");
  return result;
}

std::string single_quoted(std::string_view text, std::size_t limit) {
  // NOTE: built by append, not "'" + std::string: GCC 12 reports a false -Wrestrict on the latter.
  std::string quoted = "'";
  quoted.append(sanitized(text, limit));
  quoted.push_back('\'');
  return quoted;
}

std::string describe_json(const Json& value) {
  const std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  return str_cat(value.type_name(), " ", sanitized(text, 64));
}

Json parse_json_strict(std::string_view text, std::string_view prefix, std::string_view top_level_noun,
                       int max_depth) {
  // One key set per open object, and the key last seen at each depth (for messages).
  std::vector<std::set<std::string, std::less<>>> open_objects;
  std::vector<std::string> keys_by_depth;
  const auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) -> bool {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        if (depth >= max_depth) {
          throw IoError(str_cat(prefix, ": JSON nests too deeply: expected at most ", max_depth,
                                " levels of arrays and objects, got more"));
        }
        if (event == Json::parse_event_t::object_start) open_objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        const auto level = static_cast<std::size_t>(depth);
        if (keys_by_depth.size() <= level) keys_by_depth.resize(level + 1);
        keys_by_depth[level] = key;
        if (open_objects.empty()) break;  // cannot happen: a key is always inside an object
        if (!open_objects.back().insert(key).second) {
          if (depth <= 1) {
            throw IoError(str_cat(prefix, ": duplicate ", top_level_noun, " ", single_quoted(key),
                                  ": expected each ", top_level_noun, " once"));
          }
          throw IoError(str_cat(prefix, ": entry ", single_quoted(keys_by_depth[1]), " has duplicate key ",
                                single_quoted(key), ": expected each key once"));
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  // NOTE: nlohmann's lexer takes a NUL byte for the end of input and would ignore what follows it.
  if (const std::size_t nul = text.find('\0'); nul != std::string_view::npos) {
    throw IoError(str_cat(prefix, ": not valid JSON: expected no NUL bytes, got one at offset ", nul));
  }
  try {
    return Json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const Json::exception& error) {
    throw IoError(str_cat(prefix, ": not valid JSON: ", sanitized(error.what(), 300)));
  }
}

}  // namespace io
}  // namespace fusedmoe
