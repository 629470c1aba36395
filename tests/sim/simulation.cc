#include "tests/sim/simulation.h"

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/clock.h"
#include "common/base/sha256.h"
#include "common/base/status_macros.h"
#include "engine/sync/chunker.h"
#include "engine/sync/sync_engine.h"
#include "tests/sim/sim_device.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/sim_store.h"

namespace converge::sim {

void SimTotals::Add(const SimTotals& o) {
  seeds += o.seeds;
  encrypted_seeds += o.encrypted_seeds;
  operations += o.operations;
  user_writes += o.user_writes;
  type_changes += o.type_changes;
  touches += o.touches;
  syncs += o.syncs;
  sync_errors += o.sync_errors;
  device_power_cuts += o.device_power_cuts;
  store_power_cuts += o.store_power_cuts;
  lost_messages += o.lost_messages;
  delayed_messages += o.delayed_messages;
  conflict_copies += o.conflict_copies;
  moved_in_place += o.moved_in_place;
  compactions += o.compactions;
  evictions += o.evictions;
  log_entries_compacted += o.log_entries_compacted;
  snapshots += o.snapshots;
  writes_checked += o.writes_checked;
}

std::string SimTotals::Summary() const {
  return absl::StrCat(seeds, " seeds (", encrypted_seeds, " end-to-end encrypted), ", operations, " operations (", user_writes, " user writes, ", type_changes, " type changes, ", touches, " touches, ", syncs,
                      " sync rounds, ", sync_errors, " failed and retried), ", device_power_cuts,
                      " device power cuts, ", store_power_cuts, " store power cuts, ", lost_messages,
                      " lost messages, ", delayed_messages, " delayed and delivered out of order, ", conflict_copies, " conflict copies, ",
                      moved_in_place, " files moved in place, ", compactions, " compactions (", evictions,
                      " evictions, ", log_entries_compacted, " log entries folded, ",
                      snapshots, " snapshots applied), ", writes_checked,
                      " user writes proven kept, data lost: 0");
}

namespace {

const engine::ChunkParams kChunkParams{256, 1024, 4096};

struct Device {
  std::unique_ptr<SimDevice> sim;
  uint64_t next_file_id = 0;
  // The user's writes still current on this device: path -> content.
  std::map<std::string, std::string> current;
};

std::string Show(const std::map<std::string, std::string>& files) {
  std::string out;
  for (const auto& [p, c] : files) {
    absl::StrAppend(&out, "    ", p, c == "/" ? " (dir)" : absl::StrCat(" ", c.size(), " bytes ", c.substr(0, 24)), "\n");
  }
  return out;
}

class Run {
 public:
  Run(uint64_t seed, const SimOptions& options, SimTotals* totals)
      : seed_(seed), options_(options), totals_(totals), rng_(seed) {}
  ~Run() {
    for (const std::string& f : head_files_) std::filesystem::remove(f);
  }

  std::string Go() {
    std::vector<std::string> ids;
    for (int i = 0; i < options_.devices; ++i) ids.push_back(absl::StrCat("dev", i));
    absl::StatusOr<std::unique_ptr<SimStore>> store = SimStore::Create(&clock_, ids, {}, options_.encrypted);
    if (!store.ok()) return absl::StrCat("create the store: ", store.status().ToString());
    store_ = std::move(*store);
    if (options_.encrypted) {
      if (std::string why = StartObserver(); !why.empty()) return why;
    }
    for (const std::string& id : ids) {
      auto d = std::make_unique<Device>();
      d->sim = std::make_unique<SimDevice>(id, &clock_, store_.get(), EngineOptionsFor(d.get()), NetworkFault(), Defer());
      if (options_.encrypted) d->sim->Encrypt(ring_, &members_, HeadFile(id));
      if (absl::Status s = d->sim->Start(); !s.ok()) return absl::StrCat(id, ": start: ", s.ToString());
      devices_.push_back(std::move(d));
    }

    for (int op = 0; op < options_.operations; ++op) {
      ++totals_->operations;
      clock_.Advance(absl::Milliseconds(1 + Below(50)));
      if (Below(100) == 0) {
        if (std::string why = Compact(op); !why.empty()) return absl::StrCat("op ", op, ": ", why);
      }
      const double u = Uniform();
      Device& d = *devices_[Below(devices_.size())];
      if (u < options_.device_power_cut) {
        Trace(absl::StrCat(op, ": power cut on ", d.sim->id()));
        if (absl::Status s = PowerCut(d); !s.ok()) return absl::StrCat("op ", op, ": ", d.sim->id(), " restart: ", s.ToString());
        if (std::string why = Reconcile(d); !why.empty()) return absl::StrCat("op ", op, ": ", why);
      } else if (u < options_.device_power_cut + options_.store_power_cut) {
        Trace(absl::StrCat(op, ": store power cut"));
        ++totals_->store_power_cuts;
        if (absl::Status s = store_->PowerCut(); !s.ok()) return absl::StrCat("op ", op, ": store restart: ", s.ToString());
      } else if (u < 0.06) {
        clock_.Advance(absl::Seconds(1 + Below(30)));  // a device sleeps, time jumps
      } else if (u < 0.12 && !in_flight_.empty()) {
        Deliver(op, Below(in_flight_.size()));  // a held request arrives, out of order
      } else if (u < 0.55) {
        UserOp(op, options_.writers > 0 ? *devices_[Below(options_.writers)] : d);
      } else {
        Sync(op, d);
        if (std::string why = Reconcile(d); !why.empty()) return absl::StrCat("op ", op, ": ", why);
      }
    }

    // Faults stop (held requests arrive, in random order); everyone syncs until the folders agree.
    faults_ = false;
    while (!in_flight_.empty()) Deliver(-1, Below(in_flight_.size()));
    std::string why;
    for (int round = 0; round < 12; ++round) {
      clock_.Advance(absl::Seconds(3));
      for (auto& d : devices_) {
        Sync(-1, *d);
        if (std::string why = Reconcile(*d); !why.empty()) return absl::StrCat("final sync: ", why);
      }
      why = Converged();
      if (why.empty()) break;
    }
    if (!why.empty()) return absl::StrCat("did not converge: ", why);
    return CheckNothingLost();
  }

 private:
  double Uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  uint64_t Below(uint64_t n) { return rng_() % n; }
  void Trace(const std::string& s) {
    if (options_.verbose) std::cerr << "[seed " << seed_ << "] " << s << "\n";
  }

  // The network of the simulation: lost, held and delayed requests while faults are on.
  std::function<Fault(const char*)> NetworkFault() {
    return [this](const char*) {
      if (!faults_) return Fault::kNone;
      const double u = Uniform();
      if (u < options_.lose_request) {
        ++totals_->lost_messages;
        return Fault::kDropRequest;
      }
      if (u < options_.lose_request + options_.lose_reply) {
        ++totals_->lost_messages;
        return Fault::kDropReply;
      }
      if (u < options_.lose_request + options_.lose_reply + options_.delay) return Fault::kDelay;
      return Fault::kNone;
    };
  }
  std::function<void(std::function<void()>)> Defer() {
    return [this](std::function<void()> deliver) {
      ++totals_->delayed_messages;
      in_flight_.push_back(std::move(deliver));
    };
  }
  static engine::EngineOptions EngineOptionsFor(Device* d) {
    engine::EngineOptions eo;
    // Small chunks, so that files of a few KiB have several and edits reuse some.
    eo.chunk_params = kChunkParams;
    eo.new_file_id = [d]() {
      std::string id = absl::StrCat(d->sim->id(), "-", d->next_file_id++);
      id.resize(kFileIdBytes, '.');
      return id;
    };
    return eo;
  }

  absl::Status PowerCut(Device& d) {
    ++totals_->device_power_cuts;
    return d.sim->PowerCut();
  }

  // Reconcile follows the user's current writes on `d` after the engine touched the folder: a
  // write moved aside as a conflict copy is followed to its new name; one that is gone must be
  // in the store's history (another device's later change replaced it), or it was lost.
  std::string Reconcile(Device& d) {
    std::map<std::string, std::string> snap = d.sim->fs().Snapshot();
    std::map<Digest, std::string> where;
    for (const auto& [p, c] : snap) {
      if (c != "/") where.emplace(engine::ChunkBytes(c, kChunkParams).sha256, p);
    }
    std::map<std::string, std::string> now;
    for (const auto& [p, c] : d.current) {
      auto at = snap.find(p);
      if (at != snap.end() && at->second == c) {
        now[p] = c;
        continue;
      }
      const Digest h = engine::ChunkBytes(c, kChunkParams).sha256;
      auto moved = where.find(h);
      if (moved != where.end()) {
        now[moved->second] = c;
        continue;
      }
      if (std::string why = ReadHistory(); !why.empty()) return why;
      if (!history_.count(h)) {
        return absl::StrCat("lost: ", d.sim->id(), "'s write of ", p, " (", c.substr(0, 40),
                            "...) is gone from its folder and not in the store's history; folder now:\n", Show(snap));
      }
      ++totals_->writes_checked;
    }
    d.current = std::move(now);
    return "";
  }

  // Compact: the store compacts its log (after an operator evicted a device, half the time) and
  // drops unreferenced chunks at once, even ones just uploaded for a commit still to come.
  std::string Compact(int op) {
    if (std::string why = ReadHistory(); !why.empty()) return why;  // the check's own record first
    if (Below(2) == 0) {
      Device& d = *devices_[Below(devices_.size())];
      Trace(absl::StrCat(op, ": evict ", d.sim->id()));
      if (absl::Status s = store_->log()->Evict(SimStore::kNamespace, d.sim->id()); !s.ok()) return s.ToString();
      ++totals_->evictions;
    }
    absl::StatusOr<CompactionResult> r = store_->log()->Compact(SimStore::kNamespace, absl::Hours(24 * 30));
    if (!r.ok()) return absl::StrCat("compact: ", r.status().ToString());
    absl::StatusOr<store::ChunkStore::SweepResult> swept = store_->log()->CollectGarbage(absl::ZeroDuration());
    if (!swept.ok()) return absl::StrCat("collect garbage: ", swept.status().ToString());
    Trace(absl::StrCat(op, ": compacted through ", r->compacted_through, ", ", swept->chunks_dropped, " chunks dropped"));
    ++totals_->compactions;
    totals_->log_entries_compacted += r->log_entries_dropped;
    history_seq_ = std::max(history_seq_, r->compacted_through);
    return "";
  }

  // An encrypted run reads the store through the namespace's keys, as a device would (it never
  // syncs: its client only opens what the store holds).
  std::string HeadFile(const std::string& id) {
    std::string path = absl::StrCat(std::filesystem::temp_directory_path().string(), "/converge-sim-", getpid(), "-",
                                    seed_, "-", id);
    std::filesystem::remove(path);
    head_files_.push_back(path);
    return path;
  }

  std::string StartObserver() {
    observer_client_ = std::make_unique<SimStoreClient>(store_.get(), "observer");
    absl::StatusOr<std::unique_ptr<engine::LogGuard>> guard = engine::LogGuard::Open(
        HeadFile("observer"), SimStore::kNamespace, "observer", crypto::DeviceKeys::Generate(), &members_);
    if (!guard.ok()) return guard.status().ToString();
    observer_guard_ = std::move(*guard);
    observer_ = std::make_unique<engine::EncryptingStoreClient>(observer_client_.get(), ring_);
    observer_->SetLogGuard(observer_guard_.get());
    return "";
  }

  // StoreFiles: the store's live files (path -> content, "/" for a directory), in the clear.
  absl::StatusOr<std::map<std::string, std::string>> StoreFiles() {
    if (!options_.encrypted) return store_->Files();
    std::vector<FileVersion> live;
    CONVERGE_RETURN_IF_ERROR(observer_->ListFiles([&](const FileVersion& v) {
      if (!v.deleted) live.push_back(v);
    }).status());
    std::map<std::string, std::string> out;
    for (const FileVersion& v : live) {
      std::string& content = out[v.path];
      if (v.kind == FileKind::kDirectory) {
        content = "/";
        continue;
      }
      std::vector<engine::ChunkWant> wants;
      for (const ChunkRef& c : v.chunks) wants.push_back(engine::ChunkWant{c.sha256, {}});
      if (wants.empty()) continue;
      CONVERGE_RETURN_IF_ERROR(observer_->Fetch(wants, nullptr, [&](const Digest&, std::string bytes) {
        content += bytes;
        return absl::OkStatus();
      }));
    }
    return out;
  }

  // ReadHistory adds the contents of the commits since the last read to history_.
  std::string ReadHistory() {
    absl::StatusOr<uint64_t> head = store_->log()->HeadSeq(SimStore::kNamespace);
    if (!head.ok()) return head.status().ToString();
    if (*head < history_seq_) return absl::StrCat("the store lost commits: head ", *head, " < ", history_seq_);
    absl::Status opened;
    absl::Status read = store_->log()->ReadSince(SimStore::kNamespace, history_seq_, 0, [&](const Commit& c) {
      for (const FileVersion& stored : c.files) {
        absl::StatusOr<FileVersion> v = options_.encrypted ? observer_->Opened(stored) : stored;
        if (!v.ok()) {
          opened = v.status();
          return false;
        }
        if (!v->deleted && v->kind == FileKind::kFile) history_.insert(v->content_sha256);
      }
      history_seq_ = c.seq;
      return true;
    });
    if (!opened.ok()) return absl::StrCat("open the history: ", opened.ToString());
    if (!read.ok()) return absl::StrCat("read the history: ", read.ToString());
    return "";
  }

  void Deliver(int op, size_t i) {
    std::function<void()> deliver = std::move(in_flight_[i]);
    in_flight_.erase(in_flight_.begin() + static_cast<long>(i));
    Trace(absl::StrCat(op, ": a held request reaches the store"));
    deliver();
  }

  void Sync(int op, Device& d) {
    ++totals_->syncs;
    const uint64_t moved = d.sim->engine().apply_stats().moved;
    const uint64_t snapshots = d.sim->engine().snapshots();
    absl::Status s = d.sim->engine().SyncOnce();
    if (!s.ok()) ++totals_->sync_errors;
    totals_->moved_in_place += d.sim->engine().apply_stats().moved - moved;
    totals_->snapshots += d.sim->engine().snapshots() - snapshots;
    Trace(absl::StrCat(op, ": sync ", d.sim->id(), ": ", s.ok() ? "ok" : s.ToString()));
  }

  std::string Content(int op, const Device& d) {
    const size_t size = Below(8) == 0 ? 3000 + Below(9000) : Below(600);
    std::string c = absl::StrCat("<", seed_, "/", op, "/", d.sim->id(), ">");
    for (size_t i = 0; i < size; ++i) c.push_back(static_cast<char>('a' + Below(26)));
    return c;
  }

  std::string RandomPath() {
    static const char* dirs[] = {"", "docs", "src", "src/lib", "photos 2026", "docs/old"};
    static const char* names[] = {"a.txt", "b", "notes.md", "c d.txt", "x", "é.txt", "y.bin"};
    const std::string dir = dirs[Below(6)];
    const std::string name = names[Below(7)];
    return dir.empty() ? name : absl::StrCat(dir, "/", name);
  }

  void UserOp(int op, Device& d) {
    std::map<std::string, std::string> snap = d.sim->fs().Snapshot();
    std::vector<std::string> files, dirs;
    for (const auto& [p, c] : snap) (c == "/" ? dirs : files).push_back(p);
    const uint64_t kind = Below(100);
    absl::Status s;
    std::string what;
    if (Below(100) < 10) {
      TypeChangeOrTouch(op, d, files, dirs);
      return;
    }
    if (kind < 35 || (files.empty() && kind < 80)) {
      const std::string path = RandomPath();
      const std::string content = Content(op, d);
      what = absl::StrCat("write ", path);
      s = d.sim->fs().UserWrite(path, content);
      if (s.ok()) {
        d.current[path] = content;
        ++totals_->user_writes;
      }
    } else if (kind < 60 && !files.empty()) {
      const std::string path = files[Below(files.size())];
      // Half the edits append to the file, half replace it.
      std::string content = Below(2) ? snap[path] + Content(op, d) : Content(op, d);
      what = absl::StrCat("edit ", path);
      s = d.sim->fs().UserWrite(path, content);
      if (s.ok()) {
        d.current[path] = content;
        ++totals_->user_writes;
      }
    } else if (kind < 72 && !files.empty()) {
      const std::string path = files[Below(files.size())];
      what = absl::StrCat("delete ", path);
      s = d.sim->fs().UserRemove(path);
      if (s.ok()) Forget(d, path);
    } else if (kind < 84 && !files.empty()) {
      const std::string from = files[Below(files.size())];
      const std::string to = RandomPath();
      what = absl::StrCat("rename ", from, " -> ", to);
      if (snap.count(to) == 0) {
        s = d.sim->fs().UserRename(from, to);
        if (s.ok()) Moved(d, from, to);
      }
    } else if (kind < 90) {
      const std::string path = RandomPath();
      what = absl::StrCat("mkdir ", path);
      s = d.sim->fs().UserMkdir(path);
    } else if (kind < 95 && !dirs.empty()) {
      const std::string path = dirs[Below(dirs.size())];
      what = absl::StrCat("rm -r ", path);
      s = d.sim->fs().UserRemove(path);
      if (s.ok()) Forget(d, path);
    } else if (!dirs.empty()) {
      const std::string from = dirs[Below(dirs.size())];
      const std::string to = absl::StrCat("moved", Below(3));
      what = absl::StrCat("mv ", from, " ", to);
      if (snap.count(to) == 0 && !absl::StartsWith(to, from + "/")) {
        s = d.sim->fs().UserRename(from, to);
        if (s.ok()) Moved(d, from, to);
      }
    }
    Trace(absl::StrCat(op, ": ", d.sim->id(), " user ", what, ": ", s.ok() ? "ok" : s.ToString()));
  }

  // TypeChangeOrTouch: a file becomes a directory (rm f; mkdir f; write f/inner), a directory
  // becomes a file (rm -r d; write d), or a file's mtime alone changes (touch -d).
  void TypeChangeOrTouch(int op, Device& d, const std::vector<std::string>& files,
                         const std::vector<std::string>& dirs) {
    const uint64_t which = Below(3);
    absl::Status s;
    std::string what = "nothing to change the type of";
    if (which == 0 && !files.empty()) {
      const std::string path = files[Below(files.size())];
      const std::string content = Content(op, d);
      what = absl::StrCat("rm ", path, "; mkdir ", path, "; write ", path, "/inner");
      s = d.sim->fs().UserRemove(path);
      Forget(d, path);
      if (s.ok()) s = d.sim->fs().UserMkdir(path);
      if (s.ok()) s = d.sim->fs().UserWrite(path + "/inner", content);
      if (s.ok()) {
        d.current[path + "/inner"] = content;
        ++totals_->type_changes;
        ++totals_->user_writes;
      }
    } else if (which == 1 && !dirs.empty()) {
      const std::string path = dirs[Below(dirs.size())];
      const std::string content = Content(op, d);
      what = absl::StrCat("rm -r ", path, "; write ", path);
      s = d.sim->fs().UserRemove(path);
      Forget(d, path);
      if (s.ok()) s = d.sim->fs().UserWrite(path, content);
      if (s.ok()) {
        d.current[path] = content;
        ++totals_->type_changes;
        ++totals_->user_writes;
      }
    } else if (which == 2 && !files.empty()) {
      const std::string path = files[Below(files.size())];
      const int64_t mtime_ns = 978307200LL * 1000000000 + static_cast<int64_t>(Below(1000000)) * 1000;
      what = absl::StrCat("touch -d 2001-01-01 ", path);
      s = d.sim->fs().UserTouch(path, mtime_ns);
      if (s.ok()) ++totals_->touches;
    }
    Trace(absl::StrCat(op, ": ", d.sim->id(), " user ", what, ": ", s.ok() ? "ok" : s.ToString()));
  }

  static bool Within(const std::string& path, const std::string& dir) {
    return path == dir || absl::StartsWith(path, dir + "/");
  }
  void Forget(Device& d, const std::string& path) {
    for (auto it = d.current.begin(); it != d.current.end();) {
      it = Within(it->first, path) ? d.current.erase(it) : std::next(it);
    }
  }
  void Moved(Device& d, const std::string& from, const std::string& to) {
    std::map<std::string, std::string> moved;
    for (auto it = d.current.begin(); it != d.current.end();) {
      if (Within(it->first, from)) {
        moved[to + it->first.substr(from.size())] = it->second;
        it = d.current.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& [p, c] : moved) d.current[p] = c;
  }

  std::string Converged() {
    absl::StatusOr<std::map<std::string, std::string>> files = StoreFiles();
    if (!files.ok()) return absl::StrCat("the store's files: ", files.status().ToString());
    for (auto& d : devices_) {
      std::map<std::string, std::string> snap = d->sim->fs().Snapshot();
      if (snap != *files) {
        std::string diff;
        for (const auto& [p, c] : snap) {
          auto it = files->find(p);
          if (it == files->end()) absl::StrAppend(&diff, "    only on ", d->sim->id(), ": ", p, "\n");
          else if (it->second != c) absl::StrAppend(&diff, "    differs: ", p, "\n");
        }
        for (const auto& [p, c] : *files) {
          if (!snap.count(p)) absl::StrAppend(&diff, "    only in the store: ", p, "\n");
        }
        return absl::StrCat(d->sim->id(), " differs from the store:\n", diff, "  store:\n", Show(*files));
      }
    }
    // What a version carries besides content: every file's mtime is the same everywhere.
    for (const auto& [p, c] : *files) {
      if (c == "/") continue;
      absl::StatusOr<engine::LocalStat> first = devices_[0]->sim->fs().Stat(p);
      for (auto& d : devices_) {
        absl::StatusOr<engine::LocalStat> st = d->sim->fs().Stat(p);
        if (!first.ok() || !st.ok() || st->mtime_ns != first->mtime_ns) {
          return absl::StrCat(p, ": mtime on ", d->sim->id(), " differs from ", devices_[0]->sim->id(), "'s");
        }
      }
    }
    return "";
  }

  std::string CheckNothingLost() {
    if (std::string why = ReadHistory(); !why.empty()) return why;
    std::set<Digest> kept = history_;
    std::map<std::string, std::string> final_files = devices_[0]->sim->fs().Snapshot();
    for (const auto& [p, c] : final_files) {
      if (c != "/") kept.insert(engine::ChunkBytes(c, kChunkParams).sha256);
      if (!absl::StrContains(p, " (conflict ")) continue;
      ++totals_->conflict_copies;
      if (options_.writers == 1) {
        return absl::StrCat("a conflict copy, ", p, ", though only ", devices_[0]->sim->id(),
                            " made changes; final folder:\n", Show(final_files));
      }
    }
    for (auto& d : devices_) {
      for (const auto& [p, c] : d->current) {
        if (!kept.count(engine::ChunkBytes(c, kChunkParams).sha256)) {
          return absl::StrCat("lost: ", d->sim->id(), "'s write of ", p, " (", c.substr(0, 40),
                              "...) is neither in the folders nor in the store's history; final folder:\n",
                              Show(final_files));
        }
        ++totals_->writes_checked;
      }
    }
    return "";
  }

  const uint64_t seed_;
  const SimOptions options_;
  const crypto::Keyring ring_ = crypto::Keyring::Create();  // encrypted runs
  SimMembers members_;
  std::vector<std::string> head_files_;
  SimTotals* const totals_;
  std::mt19937_64 rng_;
  FakeClock clock_;
  bool faults_ = true;
  std::unique_ptr<SimStore> store_;
  std::vector<std::unique_ptr<Device>> devices_;
  std::unique_ptr<SimStoreClient> observer_client_;
  std::unique_ptr<engine::LogGuard> observer_guard_;
  std::unique_ptr<engine::EncryptingStoreClient> observer_;
  std::vector<std::function<void()>> in_flight_;  // held requests, not yet delivered
  std::set<Digest> history_;  // contents of every file version committed up to history_seq_
  uint64_t history_seq_ = 0;
};

}  // namespace

std::string RunSeed(uint64_t seed, const SimOptions& options, SimTotals* totals) {
  ++totals->seeds;
  if (options.encrypted) ++totals->encrypted_seeds;
  Run run(seed, options, totals);
  return run.Go();
}

}  // namespace converge::sim
