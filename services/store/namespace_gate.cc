// CommitLog's gates for online namespace moves (commit_log.h Gate).
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/model/path.h"
#include "common/model/store_behind.h"
#include "services/store/commit_log.h"

namespace converge::store {

absl::Status CommitLog::LoadGatesLocked() {
  if (gates_loaded_) return absl::OkStatus();
  PrefixIterator it(db_->db(), "M");
  for (; it.Valid(); it.Next()) {
    const rocksdb::Slice v = it.value();
    if (v.size() != 1 || v[0] > static_cast<char>(Gate::kLeaving)) {
      return absl::DataLossError(absl::StrCat("corrupt gate record of '", View(it.key()).substr(1), "'"));
    }
    gates_[std::string(View(it.key()).substr(1))] = static_cast<Gate>(v[0]);
  }
  CONVERGE_RETURN_IF_ERROR(RocksStatus(it.status(), "read gates"));
  gates_loaded_ = true;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> CommitLog::SetGate(const std::string& ns, Gate gate) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  absl::StatusOr<Namespace*> found = Find(ns);
  if (!found.ok() && !absl::IsNotFound(found.status())) return found.status();
  // Under the commit lock: a commit in flight lands before the gate closes, none after.
  Namespace* n = found.ok() ? *found : nullptr;
  if (n != nullptr) n->mu.Lock();
  const uint64_t head = n != nullptr ? n->state.head_seq : 0;
  absl::Status written;
  {
    absl::MutexLock lock(&gate_mu_);
    written = LoadGatesLocked();
  }
  // The write outside gate_mu_ (every device call reads the gates); moves are serialised by
  // their caller, and a frozen namespace's commits wait on its commit lock, held here.
  if (written.ok()) {
    rocksdb::WriteBatch batch;  // synced either way: a gate must not come back after a crash
    if (gate == Gate::kOpen) {
      batch.Delete(StoreDb::GateKey(ns));
    } else {
      batch.Put(StoreDb::GateKey(ns), std::string(1, static_cast<char>(gate)));
    }
    written = RocksStatus(db_->WriteSynced(&batch), "write gate");
  }
  if (written.ok()) {
    absl::MutexLock lock(&gate_mu_);
    if (gate == Gate::kOpen) {
      gates_.erase(ns);
    } else {
      gates_[ns] = gate;
    }
  }
  if (n != nullptr) n->mu.Unlock();
  CONVERGE_RETURN_IF_ERROR(written);
  return head;
}

CommitLog::Gate CommitLog::GateOf(const std::string& ns) {
  {
    absl::ReaderMutexLock read(&gate_mu_);
    if (gates_loaded_) {
      auto it = gates_.find(ns);
      return it == gates_.end() ? Gate::kOpen : it->second;
    }
  }
  absl::MutexLock lock(&gate_mu_);
  if (!LoadGatesLocked().ok()) return Gate::kFrozen;  // unreadable: refuse writes, retryably
  auto it = gates_.find(ns);
  return it == gates_.end() ? Gate::kOpen : it->second;
}

absl::Status CommitLog::CheckGate(const std::string& ns, bool writing) {
  switch (GateOf(ns)) {
    case Gate::kOpen:
    case Gate::kLeaving:
      return absl::OkStatus();
    case Gate::kFrozen:
      if (!writing) return absl::OkStatus();
      return absl::UnavailableError(absl::StrCat("namespace '", ns, "' is switching store shards: retry in a moment"));
    case Gate::kArriving:
      return absl::UnavailableError(absl::StrCat("namespace '", ns, "' is being copied to this store shard: retry"));
    case Gate::kMoved:
      return NamespaceMovedError(ns);
  }
  return absl::InternalError("unknown gate");
}

absl::Status CommitLog::Reload(const std::string& ns) {
  absl::StatusOr<Namespace*> found = Find(ns);
  if (absl::IsNotFound(found.status())) return absl::OkStatus();  // read on first use
  CONVERGE_RETURN_IF_ERROR(found.status());
  Namespace* n = *found;
  absl::MutexLock lock(&n->mu);
  absl::StatusOr<NamespaceState> read = ReadNamespace(ns);
  if (!read.ok() && !absl::IsNotFound(read.status())) return read.status();
  NamespaceState state = read.ok() ? std::move(*read) : NamespaceState();  // dropped: nothing here
  {
    absl::MutexLock access(&n->access_mu);
    n->owner = state.owner;
    n->members = state.members;
  }
  n->state = std::move(state);
  return absl::OkStatus();
}

}  // namespace converge::store
