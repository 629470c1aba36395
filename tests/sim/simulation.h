// Simulation: one seeded run of several devices' real sync engines (SyncEngine, Scanner,
// Applier, LocalIndex) and the store's real logic (CommitLog, ChunkStore) in one process, on
// in-memory folders and databases that can lose power, a simulated network that loses requests
// and replies or holds them and delivers them late, out of order, and a fake clock. A seeded scheduler mixes the users' file operations (create,
// edit, delete, rename, mkdir, rmdir, touch, a file replaced by a directory and back) with engine sync rounds, device power cuts (the engine
// restarts on what was durable), store power cuts, lost messages and clock jumps; then the
// faults stop and the devices sync until quiet.
//
// Checked after each run: every device's folder is identical to every other's and to the
// store's files; every user write still current on its device when the faults stopped is in
// the final folders (at its path or as a conflict copy) or in the store's history (an edit that
// another device's later edit replaced); every file's mtime is the same everywhere; with one
// writer, no conflict copy exists. In an encrypted run the store's files and history are read
// through the namespace's keys. A failure names the seed that replays it.
#ifndef CONVERGE_TESTS_SIM_SIMULATION_H_
#define CONVERGE_TESTS_SIM_SIMULATION_H_

#include <cstdint>
#include <string>

namespace converge::sim {

struct SimOptions {
  int devices = 3;
  int operations = 200;
  double lose_request = 0.03;  // per store call, while faults are on
  double lose_reply = 0.03;
  double delay = 0.03;  // held in the network, delivered later out of order
  double device_power_cut = 0.02;  // per operation
  double store_power_cut = 0.01;
  // The devices that make user edits: the first `writers` (0: all). With one writer, a conflict
  // copy in the final folders is a failure (nobody else changed anything).
  int writers = 0;
  // An end-to-end encrypted namespace: the engines sync through EncryptingStoreClient, signing
  // every commit and checking every pulled one (LogGuard); a check that refuses an honest
  // store's log shows as a run that does not converge.
  bool encrypted = false;
  bool verbose = false;  // print every step (to replay a failure)
};

struct SimTotals {
  uint64_t seeds = 0;
  uint64_t encrypted_seeds = 0;
  uint64_t operations = 0;
  uint64_t user_writes = 0;
  uint64_t type_changes = 0;     // a file replaced by a directory or a directory by a file
  uint64_t touches = 0;          // mtime-only changes
  uint64_t syncs = 0;
  uint64_t sync_errors = 0;      // sync rounds that failed (and were retried later)
  uint64_t device_power_cuts = 0;
  uint64_t store_power_cuts = 0;
  uint64_t lost_messages = 0;
  uint64_t delayed_messages = 0;
  uint64_t conflict_copies = 0;  // in the final folders
  uint64_t moved_in_place = 0;   // files devices renamed in place for another's move
  uint64_t compactions = 0;
  uint64_t evictions = 0;
  uint64_t log_entries_compacted = 0;
  uint64_t snapshots = 0;        // devices that got the file table instead of the compacted log
  uint64_t writes_checked = 0;   // user writes proven kept
  void Add(const SimTotals& o);
  std::string Summary() const;
};

// RunSeed returns "" if the run converged and lost nothing, else what went wrong.
std::string RunSeed(uint64_t seed, const SimOptions& options, SimTotals* totals);

}  // namespace converge::sim

#endif  // CONVERGE_TESTS_SIM_SIMULATION_H_
