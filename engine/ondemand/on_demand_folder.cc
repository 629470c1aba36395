#include "engine/ondemand/on_demand_folder.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/model/path.h"

namespace converge::engine {
namespace {

// ParsePins reads the pins file: one folder-relative path per line ("/" or "." for everything);
// lines that are not valid paths are skipped with a warning.
std::vector<std::string> ParsePins(const std::string& text) {
  std::vector<std::string> pins;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    std::string path(absl::StripAsciiWhitespace(line));
    while (!path.empty() && path.back() == '/') path.pop_back();
    while (!path.empty() && path.front() == '/') path.erase(0, 1);
    if (path == ".") path.clear();
    if (!path.empty() && !ValidateRelativePath(path).ok()) {
      GetLogger("engine")->warn("pins: '{}' is not a path in the folder; skipped", path);
      continue;
    }
    pins.push_back(path);
  }
  return pins;
}

}  // namespace

OnDemandFolder::OnDemandFolder(StoreClient* store, OnDemandOptions options,
                               std::function<void(const OnDemandStatus&)> report)
    : store_(store), options_(std::move(options)), report_(std::move(report)) {}

OnDemandFolder::~OnDemandFolder() { Stop(); }

absl::Status OnDemandFolder::Start() {
  CONVERGE_ASSIGN_OR_RETURN(cache_, ChunkCache::Open(options_.state_path + "/cache", options_.cache_budget_bytes));
  view_ = std::make_unique<OnDemandView>(store_, cache_.get());
  view_->Replace({}, 0);
  if (absl::Status listed = Relist(); !listed.ok()) {
    GetLogger("engine")->warn("listing the namespace: {} (the folder shows nothing until it succeeds)",
                              listed.ToString());
  }
  FollowPins();
  CONVERGE_ASSIGN_OR_RETURN(mount_, FuseMount::Mount(view_.get(), options_.folder, options_.state_fd));
  GetLogger("engine")->info("{} mounted on demand: {} files, {} bytes shown; cache budget {} bytes",
                            options_.folder, view_->stats().files, view_->stats().bytes_shown,
                            options_.cache_budget_bytes);
  runner_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void OnDemandFolder::NotifyRemoteHead(uint64_t seq) {
  uint64_t seen = remote_head_.load();
  while (seq > seen && !remote_head_.compare_exchange_weak(seen, seq)) {
  }
}

void OnDemandFolder::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  mount_.reset();  // unmounts; waits for the requests being served
  if (runner_.joinable()) runner_.join();
}

void OnDemandFolder::Run() {
  absl::Time next_list = absl::Now() + options_.relist_interval;  // even without news
  absl::Time retry_at = absl::InfinitePast();                       // after a failed listing
  absl::Time next_report = absl::InfinitePast();
  while (!stop_.WaitForNotificationWithTimeout(absl::Milliseconds(20))) {
    const absl::Time now = absl::Now();
    const bool behind = remote_head_ > view_->seq() || listed_ok_ == false;
    if (now >= next_list || (behind && now >= retry_at)) {
      const bool ok = Relist().ok();
      next_list = now + options_.relist_interval;
      retry_at = ok ? now : now + absl::Seconds(1);
    }
    FollowPins();
    if (now >= next_report) {
      report_(StatusNow());
      next_report = now + options_.report_interval;
    }
  }
  report_(StatusNow());
}

absl::Status OnDemandFolder::Relist() {
  std::vector<FileVersion> listed;
  absl::StatusOr<uint64_t> seq = store_->ListFiles([&](const FileVersion& v) {
    if (!v.deleted) listed.push_back(v);
  });
  absl::MutexLock lock(&mu_);
  if (!seq.ok()) {
    error_ = std::string(seq.status().message());
    listed_ok_ = false;
    return seq.status();
  }
  view_->Replace(listed, *seq);
  NotifyRemoteHead(*seq);
  error_.clear();
  listed_ok_ = true;
  pins_hydrated_ = false;
  listed_at_unix_ms_ = absl::ToUnixMillis(absl::Now());
  return absl::OkStatus();
}

void OnDemandFolder::FollowPins() {
  std::ifstream in(options_.state_path + "/" + kPinsFile);
  std::stringstream text;
  text << in.rdbuf();
  if (text.str() != pins_text_) {
    pins_text_ = text.str();
    view_->SetPins(ParsePins(pins_text_));
    pins_hydrated_ = false;
  }
  if (pins_hydrated_) return;
  if (absl::Status fetched = view_->HydratePins(); !fetched.ok()) {
    GetLogger("engine")->warn("fetching pinned files: {}", fetched.ToString());
    return;
  }
  pins_hydrated_ = true;
}

OnDemandStatus OnDemandFolder::StatusNow() {
  OnDemandStatus s;
  s.view = view_->stats();
  s.cache = cache_->stats();
  s.seq = view_->seq();
  s.remote_head = remote_head_;
  s.pins = ParsePins(pins_text_);
  absl::MutexLock lock(&mu_);
  s.error = error_;
  s.listed_at_unix_ms = listed_at_unix_ms_;
  s.state = !error_.empty() ? "offline" : s.seq < s.remote_head ? "listing" : "up to date";
  return s;
}

}  // namespace converge::engine
