// The tune table: JSON round trip, bucket lookup, replacement by key, and the errors a bad file gets.
#include "oracle/tuning.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "fusedmoe/error.hpp"

namespace fusedmoe {
namespace {

TuneEntry sample_entry() {
  TuneEntry entry;
  entry.key = TuneKey{.backend = "cuda_fused",
                      .device_name = "NVIDIA H100 80GB HBM3",
                      .dtype = DType::bf16,
                      .num_local_experts = 128,
                      .hidden_size = 2048,
                      .intermediate_size = 768,
                      .top_k = 8};
  entry.buckets = {{1, "stream", 0.05}, {64, "m16", 0.4}, {1024, "m64", 0.9}};
  return entry;
}

std::string expect_parse_error(const std::string& text) {
  try {
    (void)TuneTable::parse(text, "t.json");
  } catch (const InvalidArgument& error) {
    return error.what();
  }
  ADD_FAILURE() << "parsed: " << text;
  return {};
}

TEST(TuneTable, RoundTripsThroughJson) {
  TuneTable table;
  table.put(sample_entry());
  const TuneTable back = TuneTable::parse(table.to_json(), "round trip");
  ASSERT_EQ(back.entries().size(), 1u);
  const TuneEntry* entry = back.find(sample_entry().key);
  ASSERT_NE(entry, nullptr);
  ASSERT_EQ(entry->buckets.size(), 3u);
  EXPECT_EQ(entry->buckets[1].max_tokens, 64);
  EXPECT_EQ(entry->buckets[1].choice, "m16");
  EXPECT_DOUBLE_EQ(entry->buckets[2].time_ms, 0.9);
}

TEST(TuneTable, PicksTheBucketOfATokenCount) {
  const TuneEntry entry = sample_entry();
  EXPECT_EQ(entry.choice_for(1), "stream");
  EXPECT_EQ(entry.choice_for(2), "m16");
  EXPECT_EQ(entry.choice_for(64), "m16");
  EXPECT_EQ(entry.choice_for(65), "m64");
  EXPECT_EQ(entry.choice_for(1 << 20), "m64");  // beyond the last bucket: the last choice
}

TEST(TuneTable, KeysAreExactAndPutReplaces) {
  TuneTable table;
  table.put(sample_entry());
  TuneKey other = sample_entry().key;
  other.top_k = 4;
  EXPECT_EQ(table.find(other), nullptr);
  other = sample_entry().key;
  other.device_name = "NVIDIA A100-SXM4-80GB";
  EXPECT_EQ(table.find(other), nullptr);
  TuneEntry replacement = sample_entry();
  replacement.buckets = {{16, "m32", 0.1}};
  table.put(replacement);
  ASSERT_EQ(table.entries().size(), 1u);
  EXPECT_EQ(table.find(sample_entry().key)->choice_for(1), "m32");
}

TEST(TuneTable, RejectsMalformedFilesSayingWhy) {
  EXPECT_NE(expect_parse_error("{not json").find("not JSON"), std::string::npos);
  EXPECT_NE(expect_parse_error("[]").find("expected a JSON object"), std::string::npos);
  EXPECT_NE(expect_parse_error(R"({"fusedmoe_tune": 2, "entries": []})").find("format version 2"),
            std::string::npos);
  EXPECT_NE(expect_parse_error(R"({"fusedmoe_tune": 1})").find("missing field 'entries'"), std::string::npos);
  TuneTable table;
  table.put(sample_entry());
  std::string text = table.to_json();
  std::string unsorted = text;
  unsorted.replace(unsorted.find("\"max_tokens\": 64"), 16, "\"max_tokens\": 1");
  EXPECT_NE(expect_parse_error(unsorted).find("ascending max_tokens"), std::string::npos);
  std::string bad_dtype = text;
  bad_dtype.replace(bad_dtype.find("\"bf16\""), 6, "\"bf17\"");
  EXPECT_NE(expect_parse_error(bad_dtype).find("entry 0"), std::string::npos);
  std::string not_an_object = text;
  const std::size_t bucket = not_an_object.find("{", not_an_object.find("\"buckets\""));
  not_an_object.replace(bucket, not_an_object.find("}", bucket) - bucket + 1, "7");
  EXPECT_NE(expect_parse_error(not_an_object).find("entry 0 bucket 0: expected an object"),
            std::string::npos);
  std::string bad_type = text;
  bad_type.replace(bad_type.find("\"experts\": 128"), 14, "\"experts\": \"x\"");
  EXPECT_NE(expect_parse_error(bad_type).find("field 'experts' must be an integer"), std::string::npos);
  // Numbers a cast would change: refused, not wrapped (2^32 + 8 would read as top_k 8) or truncated.
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"\"top_k\": 8", "\"top_k\": 4294967304"},
                                 {"\"max_tokens\": 64", "\"max_tokens\": 1e30"},
                                 {"\"max_tokens\": 64", "\"max_tokens\": 16.5"}}) {
    std::string wide = text;
    wide.replace(wide.find(from), from.size(), to);
    EXPECT_NE(expect_parse_error(wide).find("must be an integer from"), std::string::npos) << to;
  }
}

TEST(TuneTable, LoadsFromTheEnvironment) {
  char path[] = "/tmp/fusedmoe_tune_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  TuneTable table;
  table.put(sample_entry());
  table.save(path);
  EXPECT_FALSE(std::ifstream(std::string(path) + ".tmp").good()) << "save() leaves no temporary behind";
  setenv("FUSEDMOE_TUNE_FILE", path, 1);
  const std::optional<TuneEntry> found = tuned_entry_from_env(sample_entry().key);
  TuneKey missing = sample_entry().key;
  missing.hidden_size = 4096;
  const std::optional<TuneEntry> absent = tuned_entry_from_env(missing);
  setenv("FUSEDMOE_TUNE_FILE", "/nonexistent/tune.json", 1);
  EXPECT_THROW((void)tuned_entry_from_env(sample_entry().key), InvalidArgument);
  unsetenv("FUSEDMOE_TUNE_FILE");
  std::remove(path);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->choice_for(1), "stream");
  EXPECT_FALSE(absent.has_value());
  EXPECT_FALSE(tuned_entry_from_env(sample_entry().key).has_value());  // unset: no table
}

}  // namespace
}  // namespace fusedmoe
