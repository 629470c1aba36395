// PowerCutEnv: a RocksDB Env (over an in-memory filesystem, or a real one) that remembers how
// much of each file was made durable (Sync/Fsync/Close after sync) and can cut the power: every
// write after the cut fails, and Recover() truncates each file to its durable length, as a
// machine that lost power would find it. Tests use it to prove that what the store or the engine
// acknowledged survives, whatever was in flight.
//
// Usage: open the DB on env(); Cut(); destroy the DB (its final writes fail and are dropped);
// Recover(); open the DB again on env().
//
// Thread-safe.
#ifndef CONVERGE_TESTS_TESTING_POWER_CUT_ENV_H_
#define CONVERGE_TESTS_TESTING_POWER_CUT_ENV_H_

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"

namespace converge {

class PowerCutFileSystem;

class PowerCutEnv {
 public:
  // In memory (nothing touches the disk) unless `base` is given.
  explicit PowerCutEnv(rocksdb::Env* base = nullptr);
  ~PowerCutEnv();

  rocksdb::Env* env() const { return env_.get(); }
  // Cut: from now on writes, syncs and renames fail (the DB sees I/O errors) until Recover.
  void Cut();
  // Recover drops every byte written after a file's last sync, then lets writes through again.
  absl::Status Recover();
  // Figures for the report: power cuts recovered from, and bytes dropped by them.
  uint64_t cuts() const;
  uint64_t bytes_dropped() const;

 private:
  std::unique_ptr<rocksdb::Env> mem_;  // when in memory
  std::shared_ptr<PowerCutFileSystem> fs_;
  std::unique_ptr<rocksdb::Env> env_;
  std::atomic<uint64_t> cuts_{0};
  std::atomic<uint64_t> bytes_dropped_{0};
};

}  // namespace converge

#endif  // CONVERGE_TESTS_TESTING_POWER_CUT_ENV_H_
