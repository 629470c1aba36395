#include "engine/ondemand/on_demand_view.h"

#include <algorithm>
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

void OnDemandView::Replace(const std::vector<FileVersion>& versions, uint64_t seq) {
  auto tree = std::make_shared<Tree>();
  (*tree)[""].version = ImpliedDirectory("");
  for (const FileVersion& v : versions) {
    if (v.deleted || v.path.empty()) continue;
    Node& node = (*tree)[v.path];
    node.version = v;
    uint64_t at = 0;
    for (const ChunkRef& c : v.chunks) {
      node.starts.push_back(at);
      at += c.length;
    }
    node.whole = v.kind != FileKind::kFile || at == v.size;  // else unreadable, never guessed at
  }
  std::vector<std::string> paths;
  paths.reserve(tree->size());
  for (const auto& [path, node] : *tree) paths.push_back(path);
  for (std::string path : paths) {
    while (!path.empty()) {  // link it into its parent, making parents the listing left implied
      const std::string parent = ParentOf(path);
      auto [it, made] = tree->try_emplace(parent);
      if (made) it->second.version = ImpliedDirectory(parent);
      it->second.children.push_back(NameOf(path));
      if (!made) break;
      path = parent;
    }
  }
  uint64_t files = 0, bytes = 0;
  for (auto& [path, node] : *tree) {
    std::sort(node.children.begin(), node.children.end());
    if (node.version.kind != FileKind::kFile) continue;
    ++files;
    bytes += node.version.size;
  }
  const std::vector<std::string> pins = this->pins();
  cache_->SetPinned(PinnedChunks(*tree, pins));
  absl::MutexLock lock(&mu_);
  tree_ = std::move(tree);
  files_ = files;
  bytes_shown_ = bytes;
  seq_ = seq;
}

std::vector<std::string> OnDemandView::pins() const {
  absl::MutexLock lock(&mu_);
  return pins_;
}

std::shared_ptr<const OnDemandView::Tree> OnDemandView::tree() const {
  absl::MutexLock lock(&mu_);
  return tree_;
}

absl::StatusOr<const OnDemandView::Node*> OnDemandView::Find(const Tree* t, const std::string& path) {
  if (t == nullptr) return absl::UnavailableError("the namespace has not been listed yet");
  auto it = t->find(path);
  if (it == t->end()) return absl::NotFoundError(absl::StrCat("no '", path, "' in the namespace"));
  return &it->second;
}

absl::StatusOr<FileVersion> OnDemandView::Stat(const std::string& path) const {
  std::shared_ptr<const Tree> t = tree();
  CONVERGE_ASSIGN_OR_RETURN(const Node* node, Find(t.get(), path));
  return node->version;
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
  std::shared_ptr<const Tree> t = tree();
  CONVERGE_ASSIGN_OR_RETURN(const Node* node, Find(t.get(), dir));
  if (node->version.kind != FileKind::kDirectory) {
    return absl::FailedPreconditionError(absl::StrCat("'", dir, "' is not a directory"));
  }
  const std::vector<std::string>& children = node->children;
  for (size_t i = from; i < children.size(); ++i) {
    auto child = t->find(dir.empty() ? children[i] : absl::StrCat(dir, "/", children[i]));
    if (child == t->end()) continue;  // cannot be: the tree links only what it holds
    if (!fn(children[i], child->second.version)) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> OnDemandView::Read(const std::string& path, uint64_t offset, uint64_t size) {
  std::shared_ptr<const Tree> t = tree();  // held: the node stays while this read uses it
  CONVERGE_ASSIGN_OR_RETURN(const Node* found, Find(t.get(), path));
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
  std::shared_ptr<const Tree> t;
  {
    absl::MutexLock lock(&mu_);
    pins_ = paths;
    t = tree_;
  }
  if (t != nullptr) cache_->SetPinned(PinnedChunks(*t, paths));
}

absl::flat_hash_set<Digest> OnDemandView::PinnedChunks(const Tree& tree, const std::vector<std::string>& pins) {
  absl::flat_hash_set<Digest> pinned;
  if (pins.empty()) return pinned;
  for (const auto& [path, node] : tree) {
    if (!std::any_of(pins.begin(), pins.end(), [&](const std::string& pin) { return IsUnder(path, pin); })) {
      continue;
    }
    for (const ChunkRef& c : node.version.chunks) {
      if (!c.hole()) pinned.insert(c.sha256);
    }
  }
  return pinned;
}

absl::Status OnDemandView::HydratePins() {
  std::shared_ptr<const Tree> t = tree();
  if (t == nullptr) return absl::OkStatus();
  const absl::flat_hash_set<Digest> pinned = PinnedChunks(*t, pins());
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
