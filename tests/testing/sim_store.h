// SimStore: the store's logic (StoreDb, ChunkStore, CommitLog) in the test's process, on a
// RocksDB filesystem that can lose power; SimStoreClient: an engine's StoreClient that calls it
// directly, through a network the test controls (a call can fail before it reaches the store, or
// after it took effect with its reply lost). Used by the deterministic simulation and the
// engine's power-cut tests: everything the real StoreService does between the wire and the
// logic (conversions, auth, limits) is tested elsewhere.
//
// Thread-compatible: the simulation drives everything from one thread.
#ifndef CONVERGE_TESTS_TESTING_SIM_STORE_H_
#define CONVERGE_TESTS_TESTING_SIM_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/base/clock.h"
#include "engine/sync/store_client.h"
#include "services/store/chunk_store.h"
#include "services/store/commit_log.h"
#include "services/store/store_db.h"
#include "tests/testing/power_cut_env.h"

namespace converge::sim {

class SimStore {
 public:
  // `members`: the devices of namespace "ns", owned by "owner" (end-to-end encrypted when
  // `encrypted`).
  static absl::StatusOr<std::unique_ptr<SimStore>> Create(Clock* clock, const std::vector<std::string>& members,
                                                          store::MassDeletePolicy policy = {}, bool encrypted = false);

  // PowerCut: the store process dies with its machine; it comes back with what was durable.
  absl::Status PowerCut();

  store::ChunkStore* chunks() { return chunks_.get(); }
  store::CommitLog* log() { return log_.get(); }
  PowerCutEnv& env() { return env_; }
  // Files returns the live files of the namespace (tombstones left out): path -> content ("/" for
  // directories), rebuilt from the stored chunks.
  absl::StatusOr<std::map<std::string, std::string>> Files();

  static constexpr char kNamespace[] = "ns";
  static constexpr char kOwner[] = "owner";

 private:
  SimStore(Clock* clock, store::MassDeletePolicy policy) : clock_(clock), policy_(policy) {}
  absl::Status Open();

  Clock* const clock_;
  const store::MassDeletePolicy policy_;
  PowerCutEnv env_;
  std::unique_ptr<store::StoreDb> db_;
  std::unique_ptr<store::ChunkStore> chunks_;
  std::unique_ptr<store::CommitLog> log_;
};

// What the network does to one call.
enum class Fault {
  kNone,
  kDropRequest,  // the call never reaches the store: UNAVAILABLE, nothing done
  kDropReply,    // the store did it; the reply is lost: UNAVAILABLE
  kDelay,        // the request is held in the network and reaches the store later, after other
                 // calls (Commit, PutChunks, Ack; others treat it as kDropRequest):
                 // DEADLINE_EXCEEDED now
};

class SimStoreClient : public engine::StoreClient {
 public:
  // `fault` is asked once per call with the call's name; null: a perfect network.
  // `defer` takes a delayed request's delivery, to run when the network decides.
  SimStoreClient(SimStore* store, std::string device, std::function<Fault(const char*)> fault = nullptr,
                 std::function<void(std::function<void()>)> defer = nullptr)
      : store_(store), device_(std::move(device)), fault_(std::move(fault)), defer_(std::move(defer)) {}

  absl::StatusOr<std::vector<Digest>> FindMissing(const std::vector<Digest>& digests) override;
  absl::StatusOr<absl::flat_hash_map<std::string, Signature>> Signatures(
      const std::vector<std::vector<Digest>>& bases) override;
  absl::Status PutChunks(const std::function<absl::StatusOr<bool>(engine::ChunkUpload*)>& next) override;
  absl::StatusOr<uint64_t> Commit(const std::vector<FileVersion>& changes) override;
  absl::StatusOr<uint64_t> CommitSigned(const std::vector<FileVersion>& changes,
                                        const std::vector<engine::InlineChunk>& chunks,
                                        const std::string& attestation) override;
  absl::Status Pull(uint64_t since_seq, uint32_t max_commits,
                    const std::function<absl::Status(const converge::Commit&)>& fn) override;
  absl::Status Ack(uint64_t seq, const std::vector<std::string>& blocked) override;
  absl::StatusOr<uint64_t> ListFiles(const std::function<void(const FileVersion&)>& fn, int64_t at_unix_ms) override;
  absl::StatusOr<Table> ListTable(const std::function<void(const FileVersion&)>& fn) override;
  absl::StatusOr<std::vector<HistoryVersion>> ListVersions(const std::string& path, uint32_t limit) override;
  absl::StatusOr<std::vector<ConflictRecord>> ListConflicts(bool include_resolved) override;
  absl::StatusOr<ConflictRecord> ResolveConflict(const std::string& copy_path) override;
  using ChunkSource::Fetch;
  absl::Status Fetch(const std::vector<engine::ChunkWant>& wants, const BaseReader& read_base, const Sink& sink) override;

  // Bytes of chunk data that crossed the (simulated) wire, both ways.
  uint64_t bytes_up() const { return bytes_up_; }
  uint64_t bytes_down() const { return bytes_down_; }

 private:
  absl::StatusOr<Table> List(const std::function<void(const FileVersion&)>& fn, int64_t at_unix_ms);
  Fault Ask(const char* call) {
    const Fault f = fault_ ? fault_(call) : Fault::kNone;
    return f == Fault::kDelay && !defer_ ? Fault::kDropRequest : f;
  }

  SimStore* const store_;
  const std::string device_;
  const std::function<Fault(const char*)> fault_;
  const std::function<void(std::function<void()>)> defer_;
  uint64_t bytes_up_ = 0;
  uint64_t bytes_down_ = 0;
};

}  // namespace converge::sim

#endif  // CONVERGE_TESTS_TESTING_SIM_STORE_H_
