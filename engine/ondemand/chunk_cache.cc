#include "engine/ondemand/chunk_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace converge::engine {
namespace {

bool IsHexName(const std::string& name) {
  return name.size() == 2 * kDigestSize &&
         std::all_of(name.begin(), name.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// DigestFromHex reads a name IsHexName accepted.
Digest DigestFromHex(const std::string& hex) {
  Digest d{};
  for (size_t i = 0; i < kDigestSize; ++i) {
    auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    d[i] = static_cast<uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  }
  return d;
}

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::StatusOr<std::string> ReadWhole(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(path);
    return Errno("open", path);
  }
  std::string out;
  struct stat st{};
  if (fstat(fd, &st) == 0) out.reserve(st.st_size);
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status failed = Errno("read", path);
      close(fd);
      return failed;
    }
    if (n == 0) break;
    out.append(buf, n);
  }
  close(fd);
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChunkCache>> ChunkCache::Open(std::string dir, uint64_t budget_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot make the chunk cache ", dir, ": ", ec.message()));
  std::unique_ptr<ChunkCache> cache(new ChunkCache(dir, budget_bytes));
  std::vector<std::pair<std::filesystem::file_time_type, std::pair<Digest, uint64_t>>> found;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!IsHexName(name) || !entry.is_regular_file(ec)) {
      std::filesystem::remove(entry.path(), ec);  // an interrupted write's leftover
      continue;
    }
    found.push_back({entry.last_write_time(ec), {DigestFromHex(name), entry.file_size(ec)}});
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list the chunk cache ", dir, ": ", ec.message()));
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  absl::MutexLock lock(&cache->mu_);
  for (const auto& [when, chunk] : found) {
    cache->entries_[chunk.first].bytes = chunk.second;
    cache->cached_bytes_ += chunk.second;
    cache->Touch(chunk.first);
  }
  return cache;
}

std::string ChunkCache::PathOf(const Digest& d) const { return absl::StrCat(dir_, "/", DigestToHex(d)); }

void ChunkCache::Touch(const Digest& d) {
  Entry& e = entries_[d];
  if (e.last_use != 0) by_use_.erase(e.last_use);
  e.last_use = ++use_clock_;
  by_use_[e.last_use] = d;
}

void ChunkCache::Forget(const Digest& d) {
  auto it = entries_.find(d);
  if (it == entries_.end()) return;
  by_use_.erase(it->second.last_use);
  cached_bytes_ -= it->second.bytes;
  entries_.erase(it);
}

bool ChunkCache::Has(const Digest& d) {
  absl::MutexLock lock(&mu_);
  return entries_.contains(d);
}

absl::StatusOr<std::string> ChunkCache::Get(const Digest& d) {
  {
    absl::MutexLock lock(&mu_);
    if (!entries_.contains(d)) return absl::NotFoundError("not cached");
    Touch(d);
  }
  absl::StatusOr<std::string> bytes = ReadWhole(PathOf(d));
  if (bytes.ok() && HashOf(*bytes) == d) return bytes;
  absl::MutexLock lock(&mu_);
  Forget(d);
  if (bytes.ok()) {
    ++damaged_;  // damaged on disk: never returned, fetched again
    unlink(PathOf(d).c_str());
  }
  return absl::NotFoundError("not cached");
}

absl::Status ChunkCache::Put(const Digest& d, absl::string_view bytes) {
  {
    absl::MutexLock lock(&mu_);
    if (entries_.contains(d)) {
      Touch(d);
      return absl::OkStatus();
    }
  }
  static std::atomic<uint64_t> serial{0};
  const std::string path = PathOf(d);
  const std::string tmp = absl::StrCat(dir_, "/.tmp-", getpid(), "-", serial++);
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("create", tmp);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status failed = Errno("write", tmp);
      close(fd);
      unlink(tmp.c_str());
      return failed;
    }
    done += n;
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status failed = Errno("rename", tmp);
    unlink(tmp.c_str());
    return failed;
  }
  std::vector<std::string> victims;
  {
    absl::MutexLock lock(&mu_);
    if (!entries_.contains(d)) {
      entries_[d].bytes = bytes.size();
      cached_bytes_ += bytes.size();
    }
    Touch(d);
    for (auto it = by_use_.begin(); cached_bytes_ > budget_ && it != by_use_.end();) {
      const Digest victim = it->second;
      ++it;
      if (victim == d || pinned_.contains(victim)) continue;
      evicted_bytes_ += entries_[victim].bytes;
      Forget(victim);
      victims.push_back(PathOf(victim));
    }
  }
  for (const std::string& v : victims) unlink(v.c_str());
  return absl::OkStatus();
}

void ChunkCache::SetPinned(absl::flat_hash_set<Digest> pinned) {
  absl::MutexLock lock(&mu_);
  pinned_ = std::move(pinned);
}

void ChunkCache::AddPinned(const std::vector<Digest>& more) {
  absl::MutexLock lock(&mu_);
  pinned_.insert(more.begin(), more.end());
}

ChunkCache::Stats ChunkCache::stats() {
  absl::MutexLock lock(&mu_);
  Stats s;
  s.budget_bytes = budget_;
  s.cached_bytes = cached_bytes_;
  s.cached_chunks = entries_.size();
  for (const auto& [d, e] : entries_) {
    if (pinned_.contains(d)) s.pinned_bytes += e.bytes;
  }
  s.evicted_bytes = evicted_bytes_;
  s.damaged_dropped = damaged_;
  return s;
}

}  // namespace converge::engine
