#include "fusedmoe/log.hpp"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <sstream>
#include <string>

#include "core/env.hpp"

namespace fusedmoe {

namespace {

LogLevel parse_one(const std::string& word, bool& known) {
  known = true;
  for (LogLevel level : {LogLevel::off, LogLevel::error, LogLevel::warn, LogLevel::info, LogLevel::dispatch,
                         LogLevel::debug}) {
    if (word == to_string(level)) return level;
  }
  if (word == "kernels") return LogLevel::debug;
  known = false;
  return LogLevel::warn;
}

LogLevel level_from_env() {
  const std::optional<std::string> text = env_string("FUSEDMOE_LOG_LEVEL");
  if (!text) return LogLevel::warn;
  LogLevel most = LogLevel::off;
  std::stringstream stream(*text);
  std::string word;
  bool any = false;
  while (std::getline(stream, word, ',')) {
    bool known = false;
    const LogLevel level = parse_one(word, known);
    if (!known) {
      std::fprintf(stderr,
                   "fusedmoe: FUSEDMOE_LOG_LEVEL entry '%s' is unknown: expected off, error, warn, info, "
                   "dispatch, debug or kernels\n",
                   word.c_str());
      continue;
    }
    any = true;
    if (level > most) most = level;
  }
  return any ? most : LogLevel::warn;
}

struct LogState {
  std::mutex mutex;
  LogCallback callback;
  std::atomic<LogLevel> level{level_from_env()};
};

LogState& state() {
  static LogState instance;
  return instance;
}

}  // namespace

std::string_view to_string(LogLevel level) {
  switch (level) {
    case LogLevel::off:
      return "off";
    case LogLevel::error:
      return "error";
    case LogLevel::warn:
      return "warn";
    case LogLevel::info:
      return "info";
    case LogLevel::dispatch:
      return "dispatch";
    case LogLevel::debug:
      return "debug";
  }
  return "?";
}

void set_log_callback(LogCallback callback) {
  std::lock_guard lock(state().mutex);
  state().callback = std::move(callback);
}

void set_log_level(LogLevel level) {
  state().level = level;
}
LogLevel log_level() {
  return state().level;
}
bool log_enabled(LogLevel level) {
  return level != LogLevel::off && level <= state().level.load();
}

void log(LogLevel level, std::string_view message) {
  if (!log_enabled(level)) return;
  std::lock_guard lock(state().mutex);
  if (state().callback) {
    state().callback(level, message);
    return;
  }
  std::fprintf(stderr, "fusedmoe: %.*s: %.*s\n", static_cast<int>(to_string(level).size()),
               to_string(level).data(), static_cast<int>(message.size()), message.data());
}

}  // namespace fusedmoe
