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

absl::Status WriteBehind::Append(std::string bytes) {
  absl::MutexLock lock(&mu_);
  const uint64_t size = bytes.size();
  auto room = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !status_.ok() || queued_bytes_ == 0 || queued_bytes_ + size <= max_queued_bytes_;
  };
  mu_.Await(absl::Condition(&room));
  if (!status_.ok()) return status_;
  queue_.push_back(std::move(bytes));
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
    std::string bytes = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    absl::Status s;
    if (status_.ok()) {
      mu_.Unlock();
      s = file_->Append(bytes);
      mu_.Lock();
    }
    writing_ = false;
    queued_bytes_ -= bytes.size();
    if (status_.ok() && !s.ok()) status_ = s;
  }
}

}  // namespace converge::engine
