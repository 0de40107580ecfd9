// Reading FUSEDMOE_* variables: unset, the two values of a switch, and a clear error for anything else.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "core/env.hpp"
#include "fusedmoe/error.hpp"

namespace fusedmoe {
namespace {

constexpr const char* kName = "FUSEDMOE_ENV_TEST_SWITCH";

TEST(Env, SwitchTakesItsTwoValuesAndNamesThemOtherwise) {
  unsetenv(kName);
  EXPECT_FALSE(env_switch(kName, "multi", "single"));
  setenv(kName, "multi", 1);
  EXPECT_FALSE(env_switch(kName, "multi", "single"));
  setenv(kName, "single", 1);
  EXPECT_TRUE(env_switch(kName, "multi", "single"));
  setenv(kName, "both", 1);
  try {
    env_switch(kName, "multi", "single");
    FAIL() << "accepted 'both'";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("FUSEDMOE_ENV_TEST_SWITCH='both': expected multi or single"),
              std::string::npos)
        << error.what();
  }
  unsetenv(kName);
}

TEST(Env, ChoiceIndexesItsValuesDefaultsToTheFirstAndNamesThemOtherwise) {
  unsetenv(kName);
  EXPECT_EQ(env_choice(kName, {"auto", "on", "off"}), 0);
  setenv(kName, "off", 1);
  EXPECT_EQ(env_choice(kName, {"auto", "on", "off"}), 2);
  setenv(kName, "sometimes", 1);
  try {
    env_choice(kName, {"auto", "on", "off"});
    FAIL() << "accepted 'sometimes'";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(
        std::string(error.what()).find("FUSEDMOE_ENV_TEST_SWITCH='sometimes': expected auto, on or off"),
        std::string::npos)
        << error.what();
  }
  unsetenv(kName);
}

TEST(Env, PositiveIntRejectsWhatIsNot) {
  setenv(kName, "12", 1);
  EXPECT_EQ(env_positive_int(kName), 12);
  for (const char* bad : {"0", "-3", "4x", "many"}) {
    setenv(kName, bad, 1);
    EXPECT_THROW(env_positive_int(kName), InvalidArgument) << bad;
  }
  unsetenv(kName);
  EXPECT_FALSE(env_positive_int(kName).has_value());
}

}  // namespace
}  // namespace fusedmoe
