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
#include "common/model/store_behind.h"
#include "engine/ondemand/upload.h"

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

void OnDemandFolder::Connect(StoreClient* store, const std::string& device_id) {
  if (edits_ != nullptr && !device_id.empty()) edits_->SetDevice(device_id);
  store_ = store;
  view_->SetSource(store);
  listed_ok_ = false;  // follow at once
}

absl::StatusOr<StoreClient*> OnDemandFolder::store() const {
  StoreClient* store = store_.load();
  if (store == nullptr) return absl::UnavailableError("not connected to the store yet (enrolling)");
  return store;
}

absl::Status OnDemandFolder::Start() {
  auto log = GetLogger("engine");
  CONVERGE_ASSIGN_OR_RETURN(cache_, ChunkCache::Open(options_.state_path + "/cache", options_.cache_budget_bytes));
  view_ = std::make_unique<OnDemandView>(store_.load(), cache_.get());
  view_->Replace({}, 0);
  if (options_.listings != nullptr) {
    absl::StatusOr<Listing> saved = options_.listings->Load();
    if (saved.ok()) {
      view_->Replace(saved->versions, saved->seq);
      seq_ = saved_seq_ = shown_seq_ = saved->seq;
      have_listing_ = true;
    } else if (!absl::IsNotFound(saved.status())) {
      log->warn("the saved listing: {} (listing the namespace anew)", saved.status().ToString());
    }
  }
  if (absl::Status followed = Follow(); !followed.ok()) {
    log->warn("the store: {} (the folder shows {} until it answers)", followed.ToString(),
              have_listing_ ? absl::StrCat("the listing saved at seq ", seq_) : std::string("nothing"));
  }
  FollowPins();
  if (options_.journal != nullptr) {
    edits_ = std::make_unique<LocalEdits>(view_.get(), options_.journal, options_.state_path + "/local",
                                          options_.device_id, options_.device_name);
    CONVERGE_RETURN_IF_ERROR(edits_->Load());
  }
  if (options_.mount) {
    CONVERGE_ASSIGN_OR_RETURN(mount_, FuseMount::Mount(view_.get(), edits_.get(), options_.folder, options_.state_fd));
  }
  log->info("{} mounted on demand: {} files, {} bytes shown at seq {}; cache budget {} bytes", options_.folder,
            view_->stats().files, view_->stats().bytes_shown, seq_, options_.cache_budget_bytes);
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
  absl::Time next_ask = absl::Now() + options_.follow_interval;  // even without news
  absl::Time retry_at = absl::InfinitePast();                     // after a failed call
  absl::Time next_report = absl::InfinitePast();
  while (!stop_.WaitForNotificationWithTimeout(absl::Milliseconds(20))) {
    const absl::Time now = absl::Now();
    const bool behind = remote_head_ > seq_ || !listed_ok_;
    if (now >= next_ask || (behind && now >= retry_at)) {
      const bool ok = Follow().ok();
      next_ask = now + options_.follow_interval;
      retry_at = ok ? now : now + absl::Seconds(1);
    }
    FollowPins();
    Upload();
    if (now >= next_report) {
      report_(StatusNow());
      next_report = now + options_.report_interval;
    }
  }
  Save(/*now=*/true);
  report_(StatusNow());
}

void OnDemandFolder::Upload() {
  absl::StatusOr<StoreClient*> store = this->store();
  if (edits_ == nullptr || !store.ok() || absl::Now() < upload_retry_at_) return;
  absl::StatusOr<UploadOutcome> sent = UploadLocalEdits(*store, edits_.get(), view_.get(), cache_.get(), options_.upload_quiet);
  absl::MutexLock lock(&mu_);
  upload_error_ = sent.ok() ? "" : std::string(sent.status().message());
  if (!sent.ok()) {
    GetLogger("engine")->warn("uploading local changes: {} (trying again in a second)", sent.status().ToString());
    upload_retry_at_ = absl::Now() + absl::Seconds(1);
    return;
  }
  if (sent->held_deletes > 0 && sent->held_message != held_message_) {
    GetLogger("engine")->warn("{} local deletion(s) held by the store until an operator approves: {}",
                              sent->held_deletes, sent->held_message);
  }
  held_deletes_ = sent->held_deletes;
  held_message_ = sent->held_message;
  // Held deletions are asked about again every few seconds, not at every turn.
  if (sent->held_deletes > 0) upload_retry_at_ = absl::Now() + absl::Seconds(2);
}

absl::Status OnDemandFolder::Follow() {
  absl::StatusOr<StoreClient*> store = this->store();
  absl::Status s = !store.ok() ? store.status() : have_listing_ ? absl::OkStatus() : ListWhole();
  constexpr uint32_t kBatch = 256;
  std::vector<FileVersion> changes;
  for (uint32_t pulled = kBatch; s.ok() && pulled == kBatch;) {
    pulled = 0;
    s = (*store)->Pull(seq_, kBatch, [&](const Commit& c) {
      ++pulled;
      changes.insert(changes.end(), c.files.begin(), c.files.end());
      seq_ = std::max(seq_, c.seq);
      return absl::OkStatus();
    });
    if (!changes.empty()) view_->Apply(changes, seq_);  // the whole commits pulled, also before an error
    changes.clear();
    // Offline longer than the store keeps its log, or the store restored from a backup: the
    // file table is the truth.
    if (IsLogCompacted(s) || IsStoreBehind(s)) s = ListWhole();
  }
  {
    absl::MutexLock lock(&mu_);
    listed_ok_ = s.ok();
    error_ = s.ok() ? "" : std::string(s.message());
    if (s.ok()) listed_at_unix_ms_ = absl::ToUnixMillis(absl::Now());
  }
  Shown();
  return s;
}

absl::Status OnDemandFolder::ListWhole() {
  CONVERGE_ASSIGN_OR_RETURN(StoreClient* store, this->store());
  std::vector<FileVersion> listed;
  CONVERGE_ASSIGN_OR_RETURN(uint64_t seq, store->ListFiles([&](const FileVersion& v) {
    if (!v.deleted) listed.push_back(v);
  }));
  view_->Replace(listed, seq);
  seq_ = seq;
  shown_seq_ = ~uint64_t{0};  // shown anew, even at the same seq
  have_listing_ = true;
  return absl::OkStatus();
}

void OnDemandFolder::Shown() {
  if (seq_ == shown_seq_) return;
  shown_seq_ = seq_;
  NotifyRemoteHead(seq_);
  pins_hydrated_ = false;
  absl::StatusOr<StoreClient*> store = this->store();
  if (absl::Status acked = store.ok() ? (*store)->Ack(seq_, {}) : store.status(); !acked.ok()) {
    GetLogger("engine")->debug("ack {}: {}", seq_, acked.ToString());
  }
  Save(/*now=*/false);
}

void OnDemandFolder::Save(bool now) {
  if (options_.listings == nullptr || !have_listing_ || seq_ == saved_seq_) return;
  if (!now && absl::Now() - saved_at_ < options_.save_interval) return;
  Listing listing;
  listing.seq = seq_;
  listing.versions = view_->Snapshot();
  if (absl::Status saved = options_.listings->Save(listing); !saved.ok()) {
    GetLogger("engine")->warn("saving the listing: {}", saved.ToString());
    return;
  }
  saved_seq_ = seq_;
  saved_at_ = absl::Now();
}

void OnDemandFolder::FollowPins() {
  std::ifstream in(options_.state_path + "/" + kPinsFile);
  std::stringstream text;
  text << in.rdbuf();
  if (text.str() != pins_text_) {
    pins_text_ = text.str();
    pins_ = ParsePins(pins_text_);  // a bad line is reported once, when the file changes
    view_->SetPins(pins_);
    pins_hydrated_ = false;
  }
  if (pins_hydrated_ || !listed_ok_ || absl::Now() < pins_retry_at_) return;
  if (absl::Status fetched = view_->HydratePins(); !fetched.ok()) {
    GetLogger("engine")->warn("fetching pinned files: {} (trying again in a few seconds)", fetched.ToString());
    pins_retry_at_ = absl::Now() + absl::Seconds(5);
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
  s.pins = pins_;
  if (edits_ != nullptr) s.edits = edits_->stats();
  absl::MutexLock lock(&mu_);
  s.held_deletes = held_deletes_;
  s.held_message = held_message_;
  s.upload_error = upload_error_;
  s.error = error_;
  s.listed_at_unix_ms = listed_at_unix_ms_;
  s.state = !error_.empty()            ? "offline"
            : s.seq < s.remote_head     ? "listing"
            : s.held_deletes > 0        ? "held"
            : s.edits.pending > 0       ? "uploading"
                                        : "up to date";
  return s;
}

}  // namespace converge::engine
