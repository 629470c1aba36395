#include "engine/ondemand/on_demand_view.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace converge::engine {
namespace {

std::string ParentOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

std::string NameOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool IsUnder(const std::string& path, const std::string& pin) {
  return pin.empty() || path == pin || (absl::StartsWith(path, pin) && path[pin.size()] == '/');
}

FileVersion ImpliedDirectory(const std::string& path) {
  FileVersion dir;
  dir.path = path;
  dir.kind = FileKind::kDirectory;
  dir.mode = 0755;
  return dir;
}

}  // namespace

std::shared_ptr<OnDemandView::Node> OnDemandView::MakeNode(const FileVersion& v) {
  auto node = std::make_shared<Node>();
  node->version = v;
  uint64_t at = 0;
  for (const ChunkRef& c : v.chunks) {
    node->starts.push_back(at);
    at += c.length;
  }
  node->whole = v.kind != FileKind::kFile || at == v.size;  // else unreadable, never guessed at
  return node;
}

void OnDemandView::Replace(const std::vector<FileVersion>& versions, uint64_t seq) {
  absl::flat_hash_map<std::string, std::shared_ptr<Node>> made;
  made[""] = MakeNode(ImpliedDirectory(""));
  made[""]->implied = true;
  for (const FileVersion& v : versions) {
    if (v.deleted || v.path.empty()) continue;
    made[v.path] = MakeNode(v);
  }
  std::vector<std::string> paths;
  paths.reserve(made.size());
  for (const auto& [path, node] : made) paths.push_back(path);
  for (std::string path : paths) {
    while (!path.empty()) {  // link it into its parent, making parents the listing left implied
      const std::string parent = ParentOf(path);
      auto [it, is_new] = made.try_emplace(parent);
      if (is_new) {
        it->second = MakeNode(ImpliedDirectory(parent));
        it->second->implied = true;
      }
      it->second->children.push_back(NameOf(path));
      if (!is_new) break;
      path = parent;
    }
  }
  Tree tree;
  tree.reserve(made.size());
  uint64_t files = 0, bytes = 0;
  for (auto& [path, node] : made) {
    std::sort(node->children.begin(), node->children.end());
    if (node->version.kind == FileKind::kFile) {
      ++files;
      bytes += node->version.size;
    }
    tree.emplace(path, std::move(node));
  }
  {
    absl::MutexLock lock(&tree_mu_);
    // Local changes stay shown over the new listing, its versions of their paths underneath.
    std::vector<std::pair<std::string, std::shared_ptr<const Node>>> local;
    for (auto& [path, under] : shadowed_) {
      auto shown = tree_.find(path);
      local.emplace_back(path, shown == tree_.end() || shown->second->implied ? nullptr : shown->second);
      auto listed = tree.find(path);
      under = listed == tree.end() || listed->second->implied ? nullptr : listed->second;
    }
    tree_.swap(tree);
    listed_ = true;
    files_ = files;
    bytes_shown_ = bytes;
    seq_ = seq;
    Edited edited;
    for (const auto& [path, node] : local) {
      if (node != nullptr) {
        auto copy = std::make_shared<Node>(*node);
        copy->children.clear();  // linked anew below it
        Put(std::move(copy), &edited);
      } else {
        Remove(path, &edited);
      }
    }
  }
  cache_->SetPinned(PinnedChunks(pins()));
  // `tree` (the old one) goes here, outside the lock.
}

void OnDemandView::Apply(const std::vector<FileVersion>& changes, uint64_t seq) {
  const std::vector<std::string> pins = this->pins();
  std::vector<Digest> pinned;
  {
    absl::MutexLock lock(&tree_mu_);
    Edited edited;
    for (const FileVersion& v : changes) {
      if (v.path.empty()) continue;
      if (auto under = shadowed_.find(v.path); under != shadowed_.end()) {
        under->second = v.deleted ? nullptr : MakeNode(v);  // a local change stays shown over it
        continue;
      }
      if (v.deleted) {
        Remove(v.path, &edited);
        continue;
      }
      Put(v, &edited);
      if (std::any_of(pins.begin(), pins.end(), [&](const std::string& pin) { return IsUnder(v.path, pin); })) {
        for (const ChunkRef& c : v.chunks) {
          if (!c.hole()) pinned.push_back(c.sha256);
        }
      }
    }
    seq_ = seq;
  }
  // Chunks of versions replaced stay pinned until the pins are next set (a full recount).
  if (!pinned.empty()) cache_->AddPinned(pinned);
}

OnDemandView::Node* OnDemandView::Editable(const std::string& path, Edited* edited) {
  if (auto it = edited->find(path); it != edited->end()) return it->second.get();
  auto copy = std::make_shared<Node>(*tree_.at(path));
  tree_[path] = copy;
  (*edited)[path] = copy;
  return copy.get();
}

void OnDemandView::Count(const Node& node, int sign) {
  if (node.version.kind != FileKind::kFile) return;
  files_ += sign;
  bytes_shown_ += sign * static_cast<int64_t>(node.version.size);
}

void OnDemandView::Put(std::shared_ptr<Node> node, Edited* edited) {
  const std::string& at_path = node->version.path;
  if (auto it = tree_.find(at_path); it != tree_.end()) {
    node->children = it->second->children;  // a directory keeps what lies below it
    Count(*it->second, -1);
    Count(*node, +1);
    it->second = node;
    (*edited)[at_path] = node;
    return;
  }
  Count(*node, +1);
  tree_[at_path] = node;
  (*edited)[at_path] = node;
  for (std::string path = at_path; !path.empty();) {  // link it in, making implied parents
    const std::string parent = ParentOf(path);
    const bool had = tree_.contains(parent);
    if (!had) {
      std::shared_ptr<Node> dir = MakeNode(ImpliedDirectory(parent));
      dir->implied = true;
      tree_[parent] = dir;
      (*edited)[parent] = dir;
    }
    std::vector<std::string>& children = Editable(parent, edited)->children;
    const std::string name = NameOf(path);
    auto at = std::lower_bound(children.begin(), children.end(), name);
    if (at == children.end() || *at != name) children.insert(at, name);
    if (had) break;
    path = parent;
  }
}

void OnDemandView::Remove(const std::string& path, Edited* edited) {
  auto it = tree_.find(path);
  if (it == tree_.end()) return;
  if (!it->second->children.empty()) {  // what lies below stays reachable, under an implied one
    std::shared_ptr<Node> dir = MakeNode(ImpliedDirectory(path));
    dir->implied = true;
    dir->children = it->second->children;
    Count(*it->second, -1);
    it->second = dir;
    (*edited)[path] = dir;
    return;
  }
  for (std::string gone = path; !gone.empty();) {  // unlink it; an implied parent left empty goes too
    Count(*tree_.at(gone), -1);
    tree_.erase(gone);
    edited->erase(gone);
    const std::string parent = ParentOf(gone);
    std::vector<std::string>& children = Editable(parent, edited)->children;
    auto at = std::lower_bound(children.begin(), children.end(), NameOf(gone));
    if (at != children.end() && *at == NameOf(gone)) children.erase(at);
    const Node& p = *tree_.at(parent);
    if (parent.empty() || !p.implied || !p.children.empty()) break;
    gone = parent;
  }
}

std::vector<FileVersion> OnDemandView::Snapshot() const {
  std::vector<FileVersion> out;
  absl::ReaderMutexLock lock(&tree_mu_);
  out.reserve(tree_.size());
  for (const auto& [path, node] : tree_) {
    if (!node->implied && !shadowed_.contains(path)) out.push_back(node->version);
  }
  for (const auto& [path, under] : shadowed_) {
    if (under != nullptr) out.push_back(under->version);
  }
  return out;
}

void OnDemandView::Shadow(const std::string& path) {
  if (shadowed_.contains(path)) return;
  auto it = tree_.find(path);
  shadowed_[path] = it == tree_.end() || it->second->implied ? nullptr : it->second;
}

void OnDemandView::ShowLocal(const FileVersion& v, const std::string& data) {
  std::shared_ptr<Node> node = MakeNode(v);
  node->local = data;
  absl::MutexLock lock(&tree_mu_);
  Shadow(v.path);
  Edited edited;
  Put(std::move(node), &edited);
}

void OnDemandView::HideLocal(const std::string& path) {
  absl::MutexLock lock(&tree_mu_);
  Shadow(path);
  Edited edited;
  Remove(path, &edited);
}

void OnDemandView::Settle(const std::string& path, const FileVersion* committed) {
  absl::MutexLock lock(&tree_mu_);
  auto under = shadowed_.find(path);
  if (under == shadowed_.end()) return;
  std::shared_ptr<const Node> remote = under->second;
  shadowed_.erase(under);
  Edited edited;
  if (committed != nullptr && !committed->deleted) {
    Put(*committed, &edited);
  } else if (committed == nullptr && remote != nullptr) {
    auto copy = std::make_shared<Node>(*remote);
    copy->children.clear();  // what lies below is the tree's now
    Put(std::move(copy), &edited);
  } else {
    Remove(path, &edited);
  }
}

std::optional<FileVersion> OnDemandView::Remote(const std::string& path) const {
  absl::ReaderMutexLock lock(&tree_mu_);
  if (auto under = shadowed_.find(path); under != shadowed_.end()) {
    if (under->second == nullptr) return std::nullopt;
    return under->second->version;
  }
  auto it = tree_.find(path);
  if (it == tree_.end() || it->second->implied) return std::nullopt;
  return it->second->version;
}

FileVersion OnDemandView::Shown(const Node& node) {
  if (node.local.empty()) return node.version;
  FileVersion v = node.version;
  struct stat st {};
  if (stat(node.local.c_str(), &st) == 0) {
    v.size = st.st_size;
    v.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  }
  return v;
}

absl::StatusOr<std::string> OnDemandView::ReadLocal(const Node& node, uint64_t offset, uint64_t size) {
  const int fd = open(node.local.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("'", node.version.path, "' written here: ", std::strerror(errno)));
  }
  std::string out(size, '\0');
  const ssize_t n = pread(fd, out.data(), size, static_cast<off_t>(offset));
  const int err = errno;
  close(fd);
  if (n < 0) return absl::UnavailableError(absl::StrCat("'", node.version.path, "' written here: ", std::strerror(err)));
  out.resize(n);
  return out;
}

std::vector<std::string> OnDemandView::pins() const {
  absl::MutexLock lock(&mu_);
  return pins_;
}

absl::StatusOr<std::shared_ptr<const OnDemandView::Node>> OnDemandView::Find(const std::string& path) const {
  absl::ReaderMutexLock lock(&tree_mu_);
  if (!listed_) return absl::UnavailableError("the namespace has not been listed yet");
  auto it = tree_.find(path);
  if (it == tree_.end()) return absl::NotFoundError(absl::StrCat("no '", path, "' in the namespace"));
  return it->second;
}

absl::StatusOr<FileVersion> OnDemandView::Stat(const std::string& path) const {
  CONVERGE_ASSIGN_OR_RETURN(std::shared_ptr<const Node> node, Find(path));
  return Shown(*node);
}

absl::StatusOr<std::vector<std::string>> OnDemandView::List(const std::string& dir) const {
  std::vector<std::string> names;
  CONVERGE_RETURN_IF_ERROR(ListFrom(dir, 0, [&](const std::string& name, const FileVersion&) {
    names.push_back(name);
    return true;
  }));
  return names;
}

absl::Status OnDemandView::ListFrom(
    const std::string& dir, size_t from,
    const std::function<bool(const std::string& name, const FileVersion& v)>& fn) const {
  CONVERGE_ASSIGN_OR_RETURN(std::shared_ptr<const Node> node, Find(dir));
  if (node->version.kind != FileKind::kDirectory) {
    return absl::FailedPreconditionError(absl::StrCat("'", dir, "' is not a directory"));
  }
  const std::vector<std::string>& children = node->children;  // as of when it was found
  for (size_t i = from; i < children.size(); ++i) {
    absl::StatusOr<std::shared_ptr<const Node>> child =
        Find(dir.empty() ? children[i] : absl::StrCat(dir, "/", children[i]));
    if (!child.ok()) continue;  // removed since
    if (!fn(children[i], (*child)->local.empty() ? (*child)->version : Shown(**child))) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> OnDemandView::Read(const std::string& path, uint64_t offset, uint64_t size) {
  // Held: the node stays as found while this read uses it, whatever changes meanwhile.
  CONVERGE_ASSIGN_OR_RETURN(std::shared_ptr<const Node> found, Find(path));
  if (!found->local.empty()) {
    absl::StatusOr<std::string> local = ReadLocal(*found, offset, size);
    if (local.ok()) return local;
    // Uploaded meanwhile, its written copy gone: it reads from its chunks now.
    CONVERGE_ASSIGN_OR_RETURN(found, Find(path));
    if (!found->local.empty()) return local.status();
  }
  const Node& node = *found;
  if (node.version.kind != FileKind::kFile) {
    return absl::FailedPreconditionError(absl::StrCat("'", path, "' is not a file"));
  }
  if (!node.whole) {
    NoteFailure(path, absl::DataLossError("its chunks do not add up to its size"));
    return absl::DataLossError(absl::StrCat("'", path, "': the listing's chunks do not add up to its size"));
  }
  std::string out;
  if (offset >= node.version.size) return out;
  const uint64_t end = std::min(node.version.size, offset + size);
  out.reserve(end - offset);
  size_t i = std::upper_bound(node.starts.begin(), node.starts.end(), offset) - node.starts.begin() - 1;
  for (uint64_t at = offset; at < end; ++i) {
    const ChunkRef& chunk = node.version.chunks[i];
    const uint64_t from = at - node.starts[i];
    const uint64_t take = std::min<uint64_t>(chunk.length - from, end - at);
    if (chunk.hole()) {
      out.append(take, '\0');
    } else {
      absl::StatusOr<std::string> bytes = ChunkBytes(node, i);
      if (!bytes.ok()) {
        NoteFailure(path, bytes.status());
        return absl::UnavailableError(absl::StrCat(
            "'", path, "' is not cached on this device and the store could not send it: ", bytes.status().message()));
      }
      out.append(*bytes, from, take);
    }
    at += take;
  }
  return out;
}

absl::StatusOr<std::string> OnDemandView::ChunkBytes(const Node& node, size_t i) {
  const Digest& wanted = node.version.chunks[i].sha256;
  absl::StatusOr<std::string> cached = cache_->Get(wanted);
  if (!absl::IsNotFound(cached.status())) return cached;
  std::vector<Digest> fetch = {wanted};
  // Reading on from a chunk this device has: a sequential reader, served ahead. A first read
  // (`head -c 100`) fetches only the chunk it needs.
  const bool sequential = i > 0 && (node.version.chunks[i - 1].hole() || cache_->Has(node.version.chunks[i - 1].sha256));
  for (size_t j = i + 1; sequential && j < node.version.chunks.size() && fetch.size() < kReadAheadChunks; ++j) {
    const ChunkRef& ahead = node.version.chunks[j];
    if (ahead.hole() || std::find(fetch.begin(), fetch.end(), ahead.sha256) != fetch.end()) continue;
    if (!cache_->Has(ahead.sha256)) fetch.push_back(ahead.sha256);
  }
  // A chunk another reader is fetching is waited for, not fetched twice (the kernel's read-ahead
  // and the read it runs ahead of often want the same one).
  std::shared_ptr<InFlight> other;
  std::vector<std::pair<Digest, std::shared_ptr<InFlight>>> mine;
  {
    absl::MutexLock lock(&fetch_mu_);
    if (auto it = in_flight_.find(wanted); it != in_flight_.end()) {
      other = it->second;
    } else {
      for (const Digest& d : fetch) {
        if (in_flight_.contains(d)) continue;  // another reader brings that one
        auto& slot = in_flight_[d];
        slot = std::make_shared<InFlight>();
        mine.emplace_back(d, slot);
      }
    }
  }
  if (other != nullptr) {
    other->done.WaitForNotification();
    if (!other->status.ok()) return other->status;
    return other->bytes;
  }
  std::vector<Digest> digests;
  for (const auto& [d, f] : mine) digests.push_back(d);
  hydrating_++;
  const absl::Status fetched = Fetch(digests, [&](const Digest& d, std::string bytes) -> absl::Status {
    bytes_fetched_ += bytes.size();
    chunks_fetched_++;
    CONVERGE_RETURN_IF_ERROR(cache_->Put(d, bytes));  // checked against d by the source
    for (auto& [md, f] : mine) {
      if (md == d) f->bytes = std::move(bytes);  // the cache may evict it before it is read back
    }
    return absl::OkStatus();
  });
  hydrating_--;
  {
    absl::MutexLock lock(&fetch_mu_);
    for (auto& [d, f] : mine) {
      in_flight_.erase(d);
      f->status = !fetched.ok()        ? fetched
                  : f->bytes.empty() ? absl::DataLossError(absl::StrCat("the store sent no chunk ", DigestToHex(d)))
                                     : absl::OkStatus();
      f->done.Notify();
    }
  }
  const InFlight& got = *mine.front().second;  // `wanted` is first
  if (!got.status.ok()) return got.status;
  return got.bytes;
}

absl::Status OnDemandView::Fetch(const std::vector<Digest>& digests, const ChunkSource::Sink& sink) {
  ChunkSource* source = source_.load();
  if (source == nullptr) return absl::UnavailableError("not connected to the store yet");
  return source->Fetch(digests, sink);
}

void OnDemandView::NoteFailure(const std::string& path, const absl::Status& why) {
  reads_failed_++;
  absl::MutexLock lock(&mu_);
  last_failure_ = absl::StrCat(path, ": ", why.message());
}

void OnDemandView::SetPins(std::vector<std::string> paths) {
  {
    absl::MutexLock lock(&mu_);
    pins_ = paths;
  }
  cache_->SetPinned(PinnedChunks(paths));
}

absl::flat_hash_set<Digest> OnDemandView::PinnedChunks(const std::vector<std::string>& pins) const {
  absl::flat_hash_set<Digest> pinned;
  if (pins.empty()) return pinned;
  absl::ReaderMutexLock lock(&tree_mu_);
  for (const auto& [path, node] : tree_) {
    if (!std::any_of(pins.begin(), pins.end(), [&](const std::string& pin) { return IsUnder(path, pin); })) {
      continue;
    }
    for (const ChunkRef& c : node->version.chunks) {
      if (!c.hole()) pinned.insert(c.sha256);
    }
  }
  return pinned;
}

absl::Status OnDemandView::HydratePins() {
  const absl::flat_hash_set<Digest> pinned = PinnedChunks(pins());
  std::vector<Digest> missing;
  for (const Digest& d : pinned) {
    if (!cache_->Has(d)) missing.push_back(d);
  }
  constexpr size_t kBatch = 64;
  for (size_t from = 0; from < missing.size(); from += kBatch) {
    std::vector<Digest> batch(missing.begin() + from, missing.begin() + std::min(missing.size(), from + kBatch));
    hydrating_++;
    absl::Status fetched = Fetch(batch, [&](const Digest& d, std::string bytes) -> absl::Status {
      bytes_fetched_ += bytes.size();
      chunks_fetched_++;
      return cache_->Put(d, bytes);
    });
    hydrating_--;
    CONVERGE_RETURN_IF_ERROR(fetched);
  }
  return absl::OkStatus();
}

OnDemandView::Stats OnDemandView::stats() const {
  Stats s;
  {
    absl::MutexLock lock(&mu_);
    s.last_failure = last_failure_;
  }
  {
    absl::ReaderMutexLock lock(&tree_mu_);
    s.files = files_;
    s.bytes_shown = bytes_shown_;
  }
  s.bytes_fetched = bytes_fetched_;
  s.chunks_fetched = chunks_fetched_;
  s.reads_failed = reads_failed_;
  s.hydrating = hydrating_;
  return s;
}

}  // namespace converge::engine
