// The CPU work splitters: every item runs exactly once, in ranges inside [0, count), whatever the thread
// count, share of contiguous head, or count (including counts smaller than the team).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "core/threading.hpp"

namespace fusedmoe {
namespace {

TEST(Threading, MostlyStaticRunsEveryItemOnce) {
  for (const int threads : {1, 2, 3}) {
    for (const double share : {0.0, 0.5, 0.9, 1.0}) {
      for (const std::int64_t count : {0, 1, 2, 3, 7, 64, 1001}) {
        SCOPED_TRACE(::testing::Message()
                     << threads << " threads, share " << share << ", " << count << " items");
        std::vector<std::atomic<int>> visits(static_cast<std::size_t>(count));
        std::atomic<bool> out_of_range{false};
        parallel_for_mostly_static(count, threads, share, [&](std::int64_t begin, std::int64_t end) {
          if (begin < 0 || end > count || begin >= end) out_of_range = true;
          for (std::int64_t item = begin; item < end && item < count; ++item) ++visits[item];
        });
        EXPECT_FALSE(out_of_range);
        for (std::int64_t item = 0; item < count; ++item) EXPECT_EQ(visits[item], 1) << "item " << item;
      }
    }
  }
}

}  // namespace
}  // namespace fusedmoe
