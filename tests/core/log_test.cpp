#include <gtest/gtest.h>

#include "fusedmoe/log.hpp"

namespace fusedmoe {
namespace {

TEST(Log, LevelsFilterAndTheSinkIsSettable) {
  std::vector<std::pair<LogLevel, std::string>> seen;
  const LogLevel previous = log_level();
  set_log_callback([&](LogLevel level, std::string_view message) { seen.emplace_back(level, message); });
  set_log_level(LogLevel::info);
  log(LogLevel::info, "shown");
  log(LogLevel::dispatch, "hidden");
  log(LogLevel::error, "also shown");
  set_log_level(LogLevel::off);
  log(LogLevel::error, "silenced");
  set_log_callback(nullptr);
  set_log_level(previous);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].second, "shown");
  EXPECT_EQ(seen[1].first, LogLevel::error);
}

}  // namespace
}  // namespace fusedmoe
