// Helpers shared by the safetensors reader, writer and checkpoint: dtype names, UTF-8 checks, quoting
// of untrusted text in messages, and a strict JSON parser (duplicate keys and deep nesting rejected).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fusedmoe/dtype.hpp"

namespace fusedmoe::io {

using Json = nlohmann::json;

// "F32" -> DType::fp32 etc.; nullopt for any other string.
std::optional<DType> dtype_from_safetensors(std::string_view name);
// Whether `name` is a dtype the format defines (F64, BOOL, F8_E4M3, ...), supported here or not.
bool is_known_safetensors_dtype(std::string_view name);
// "F32, F16, BF16, I32, I64, U8"
std::string_view supported_safetensors_dtypes();

// Offset of the first byte that breaks UTF-8 (RFC 3629: no overlongs, surrogates or code points past
// U+10FFFF), or nullopt when `text` is valid.
std::optional<std::size_t> find_invalid_utf8(std::string_view text);

// Untrusted text made safe for a message: control, non-ASCII and backslash bytes escaped as \xNN, cut
// after `limit` bytes. single_quoted() puts it in single quotes (not named quoted(): ADL would pick
// std::quoted for std::string arguments).
std::string sanitized(std::string_view text, std::size_t limit = 200);
std::string single_quoted(std::string_view text, std::size_t limit = 200);
// A JSON value for a message: its type and a short dump ("number -3", "array [1,2]").
std::string describe_json(const Json& value);

// Parses `text` as JSON with no comments and no NUL bytes, rejecting duplicate keys in any object and
// arrays or objects nested more than `max_depth` levels deep (checked while parsing, before the value is
// built). Errors are IoError starting with `prefix`; a duplicate key at the top level is reported as a
// duplicate `top_level_noun` ("tensor name").
// NOTE: the whole document is built in memory, roughly 10x the text size at worst; callers cap the text.
Json parse_json_strict(std::string_view text, std::string_view prefix, std::string_view top_level_noun,
                       int max_depth);

}  // namespace fusedmoe::io
