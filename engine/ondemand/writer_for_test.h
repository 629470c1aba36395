// WriterForTest: the device whose folder an on-demand test reads: a store's logic in the test's
// process (SimStore, members dev1 and dev2) and dev1 syncing an in-memory folder up to it.
#ifndef CONVERGE_ENGINE_ONDEMAND_WRITER_FOR_TEST_H_
#define CONVERGE_ENGINE_ONDEMAND_WRITER_FOR_TEST_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "engine/sync/local_index.h"
#include "engine/sync/sync_engine.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/mem_filesystem.h"
#include "tests/testing/power_cut_env.h"
#include "tests/testing/sim_store.h"

namespace converge::engine {

struct WriterForTest {
  // Open makes the store and dev1's engine; ok() says whether it could.
  absl::Status Open() {
    absl::StatusOr<std::unique_ptr<sim::SimStore>> made = sim::SimStore::Create(&clock, {"dev1", "dev2"});
    if (!made.ok()) return made.status();
    store = std::move(*made);
    fs = std::make_unique<MemFilesystem>(&clock);
    client = std::make_unique<sim::SimStoreClient>(store.get(), "dev1");
    absl::StatusOr<std::unique_ptr<LocalIndex>> opened = LocalIndex::Open("/index", env.env());
    if (!opened.ok()) return opened.status();
    index = std::move(*opened);
    engine = std::make_unique<SyncEngine>(fs.get(), index.get(), client.get(), &clock, "dev1", EngineOptions{});
    return absl::OkStatus();
  }
  // Sync uploads what dev1's folder holds now.
  absl::Status Sync() {
    clock.Advance(absl::Seconds(2));  // past the stat granularity the index trusts
    return engine->SyncOnce();
  }

  FakeClock clock;
  PowerCutEnv env;
  std::unique_ptr<sim::SimStore> store;
  std::unique_ptr<MemFilesystem> fs;
  std::unique_ptr<sim::SimStoreClient> client;
  std::unique_ptr<LocalIndex> index;
  std::unique_ptr<SyncEngine> engine;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_ONDEMAND_WRITER_FOR_TEST_H_
