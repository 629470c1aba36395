// StoreTest: a store's commit log and chunk store on a real RocksDB under the test's temp
// folder, with a fake clock; namespace "ns" of owner alice with devices dev1 and dev2.
#ifndef CONVERGE_SERVICES_STORE_STORE_TEST_FIXTURE_H_
#define CONVERGE_SERVICES_STORE_STORE_TEST_FIXTURE_H_

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "common/base/sha256.h"
#include "common/model/model.h"
#include "gtest/gtest.h"
#include "services/store/chunk_store.h"
#include "services/store/commit_log.h"
#include "services/store/store_db.h"
#include "tests/testing/fake_clock.h"

namespace converge::store {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(getenv("TEST_TMPDIR")) + "/" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    Open();
    ASSERT_TRUE(log_->RegisterNamespace("ns", "alice", {"dev1", "dev2"}).ok());
  }

  void Open() {
    log_.reset();
    chunks_.reset();
    db_.reset();
    auto db = StoreDb::Open(dir_);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    chunks_ = std::make_unique<ChunkStore>(db_.get());
    log_ = std::make_unique<CommitLog>(db_.get(), chunks_.get(), &clock_);
  }

  FileVersion File(const std::string& path, const std::string& content, uint64_t base_seq) {
    FileVersion v;
    v.file_id = std::string(kFileIdBytes, 'f');
    v.path = path;
    v.size = content.size();
    v.content_sha256 = HashOf(content);
    if (!content.empty()) v.chunks = {{HashOf(content), static_cast<uint32_t>(content.size())}};
    v.base_seq = base_seq;
    return v;
  }

  void PutChunk(const std::string& content) {
    ASSERT_TRUE(chunks_->Put("alice", {{HashOf(content), content}}).ok());
  }

  std::string dir_;
  FakeClock clock_;
  std::unique_ptr<StoreDb> db_;
  std::unique_ptr<ChunkStore> chunks_;
  std::unique_ptr<CommitLog> log_;
};

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_STORE_TEST_FIXTURE_H_
