#include "engine/fs/write_behind.h"

#include <utility>

namespace converge::engine {

WriteBehind::WriteBehind(TempFile* file, uint64_t max_queued_bytes)
    : file_(file), max_queued_bytes_(max_queued_bytes), thread_([this] { Run(); }) {}

WriteBehind::~WriteBehind() {
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
  }
  thread_.join();
}

absl::Status WriteBehind::Append(std::string bytes) { return Queue(Write{std::move(bytes), 0}); }

absl::Status WriteBehind::AppendHole(uint64_t n) { return Queue(Write{std::string(), n}); }

absl::Status WriteBehind::AppendFrom(ReadableFile* src, uint64_t offset, uint64_t length) {
  return Queue(Write{std::string(), 0, src, offset, length});
}

absl::Status WriteBehind::Perform(const Write& w) {
  if (w.src != nullptr) return file_->AppendFrom(w.src, w.src_offset, w.src_length);
  if (w.hole > 0) return file_->AppendHole(w.hole);
  return file_->Append(w.bytes);
}

absl::Status WriteBehind::Queue(Write w) {
  absl::MutexLock lock(&mu_);
  const uint64_t size = w.bytes.size();
  auto room = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !status_.ok() || queued_bytes_ == 0 || queued_bytes_ + size <= max_queued_bytes_;
  };
  mu_.Await(absl::Condition(&room));
  if (!status_.ok()) return status_;
  queue_.push_back(std::move(w));
  queued_bytes_ += size;
  return absl::OkStatus();
}

absl::Status WriteBehind::Finish() {
  absl::MutexLock lock(&mu_);
  auto drained = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return queue_.empty() && !writing_; };
  mu_.Await(absl::Condition(&drained));
  return status_;
}

void WriteBehind::Run() {
  absl::MutexLock lock(&mu_);
  auto work = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || closing_; };
  while (true) {
    mu_.Await(absl::Condition(&work));
    if (queue_.empty()) return;  // closing, everything written
    Write w = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    absl::Status s;
    if (status_.ok()) {
      mu_.Unlock();
      s = Perform(w);
      mu_.Lock();
    }
    writing_ = false;
    queued_bytes_ -= w.bytes.size();
    if (status_.ok() && !s.ok()) status_ = s;
  }
}

}  // namespace converge::engine
