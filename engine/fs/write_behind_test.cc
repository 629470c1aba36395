#include "engine/fs/write_behind.h"

#include <gtest/gtest.h>

#include <string>

#include "common/base/clock.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/mem_filesystem.h"

namespace converge::engine {
namespace {

std::string Block(int i, size_t size) { return std::string(size, static_cast<char>('a' + i % 26)); }

TEST(WriteBehindTest, WritesEverythingInOrderThroughABoundedQueue) {
  FakeClock clock;
  MemFilesystem fs(&clock);
  auto temp = fs.CreateTemp();
  ASSERT_TRUE(temp.ok());
  std::string expected;
  {
    // A queue of 3 KiB: appends wait for the writer; one larger than the queue still goes.
    WriteBehind behind(temp->get(), 3 << 10);
    for (int i = 0; i < 200; ++i) {
      const std::string b = Block(i, i == 100 ? 10 << 10 : 1000 + i);
      expected += b;
      ASSERT_TRUE(behind.Append(b).ok());
    }
    ASSERT_TRUE(behind.Finish().ok());
    std::string back;
    ASSERT_TRUE((*temp)->ReadBack(0, expected.size() + 1, &back).ok());
    EXPECT_EQ(back, expected);
    // More after a Finish, written by the destructor.
    expected += Block(7, 5000);
    ASSERT_TRUE(behind.Append(Block(7, 5000)).ok());
  }
  std::string back;
  ASSERT_TRUE((*temp)->ReadBack(0, expected.size() + 1, &back).ok());
  EXPECT_EQ(back, expected);
}

TEST(WriteBehindTest, RangesOfAnotherFileGoInOrderBetweenTheBytes) {
  FakeClock clock;
  MemFilesystem fs(&clock);
  auto source = fs.CreateTemp();
  ASSERT_TRUE(source.ok());
  const std::string old = Block(1, 3000) + Block(2, 3000);
  ASSERT_TRUE((*source)->Append(old).ok());
  ASSERT_TRUE((*source)->Install("old.bin", 0644, 0).ok());
  auto src = fs.OpenRead("old.bin");
  ASSERT_TRUE(src.ok());
  auto temp = fs.CreateTemp();
  ASSERT_TRUE(temp.ok());
  {
    WriteBehind behind(temp->get(), 1 << 10);
    ASSERT_TRUE(behind.Append("head").ok());
    ASSERT_TRUE(behind.AppendFrom(src->get(), 2500, 1000).ok());
    ASSERT_TRUE(behind.Append("tail").ok());
    ASSERT_TRUE(behind.AppendFrom(src->get(), 0, 10).ok());
    ASSERT_TRUE(behind.Finish().ok());
    // A range past the source's end fails the file.
    ASSERT_TRUE(behind.AppendFrom(src->get(), 5990, 20).ok());
    EXPECT_TRUE(absl::IsAborted(behind.Finish()));
  }
  std::string back;
  ASSERT_TRUE((*temp)->ReadBack(0, 1 << 20, &back).ok());
  EXPECT_EQ(back.substr(0, 1018), "head" + old.substr(2500, 1000) + "tail" + old.substr(0, 10));
}

TEST(WriteBehindTest, AFailedWriteIsReportedAndStopsLaterOnes) {
  FakeClock clock;
  MemFilesystem fs(&clock);
  auto temp = fs.CreateTemp();
  ASSERT_TRUE(temp.ok());
  WriteBehind behind(temp->get(), 1 << 20);
  ASSERT_TRUE(behind.Append(Block(0, 4096)).ok());
  ASSERT_TRUE(behind.Finish().ok());
  fs.set_full(true);
  ASSERT_TRUE(behind.Append(Block(1, 4096)).ok());  // queued: the failure comes later
  EXPECT_EQ(behind.Finish().code(), absl::StatusCode::kResourceExhausted);
  fs.set_full(false);
  EXPECT_EQ(behind.Append(Block(2, 4096)).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(behind.Finish().code(), absl::StatusCode::kResourceExhausted);
  std::string back;
  ASSERT_TRUE((*temp)->ReadBack(0, 1 << 20, &back).ok());
  EXPECT_EQ(back, Block(0, 4096));  // nothing after the failure
}

}  // namespace
}  // namespace converge::engine
