#include "tests/testing/power_cut_env.h"

#include <rocksdb/db.h>

#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace converge {
namespace {

std::unique_ptr<rocksdb::DB> OpenDb(PowerCutEnv& env) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.env = env.env();
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, "/db", &raw);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return std::unique_ptr<rocksdb::DB>(raw);
}

// The wrapper must really drop what was not synced, or tests built on it prove nothing.
TEST(PowerCutEnvTest, KeepsSyncedWritesAndDropsTheRest) {
  PowerCutEnv env;
  auto db = OpenDb(env);
  ASSERT_NE(db, nullptr);
  rocksdb::WriteOptions synced;
  synced.sync = true;
  ASSERT_TRUE(db->Put(synced, "kept", "1").ok());
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "lost", std::string(1000, 'x')).ok());
  env.Cut();
  EXPECT_FALSE(db->Put(synced, "after", "cut").ok());
  db.reset();
  ASSERT_TRUE(env.Recover().ok());
  EXPECT_GE(env.bytes_dropped(), 1000u);
  EXPECT_EQ(env.cuts(), 1u);

  db = OpenDb(env);
  ASSERT_NE(db, nullptr);
  std::string value;
  EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), "kept", &value).ok());
  EXPECT_EQ(value, "1");
  EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), "lost", &value).IsNotFound());
  EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), "after", &value).IsNotFound());
  // And the database takes writes again.
  EXPECT_TRUE(db->Put(synced, "again", "2").ok());
}

TEST(PowerCutEnvTest, AFlushedMemtableSurvivesWithoutTheWal) {
  PowerCutEnv env;
  auto db = OpenDb(env);
  ASSERT_NE(db, nullptr);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "k" + std::to_string(i), "v").ok());
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());  // SST files are synced by the flush
  env.Cut();
  db.reset();
  ASSERT_TRUE(env.Recover().ok());
  db = OpenDb(env);
  ASSERT_NE(db, nullptr);
  std::string value;
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), "k" + std::to_string(i), &value).ok()) << i;
}

}  // namespace
}  // namespace converge
