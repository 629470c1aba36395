// WriteBehind appends to a TempFile on a thread of its own, in order, so that writing a large
// download (copying it into the page cache) overlaps receiving and checking the next chunks
// instead of following them. At most `max_queued_bytes` wait to be written (one chunk more when
// it alone is larger); Append blocks while the queue is full.
//
// Append returns the first failed write so far (later appends are then refused); Finish waits
// for every queued write and returns their status. The destructor writes what is queued (those
// chunks were checked: a resumed download keeps them) before it returns. Not for concurrent
// callers: one thread appends, the writer thread writes.
#ifndef CONVERGE_ENGINE_FS_WRITE_BEHIND_H_
#define CONVERGE_ENGINE_FS_WRITE_BEHIND_H_

#include <cstdint>
#include <deque>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "engine/fs/filesystem.h"

namespace converge::engine {

class WriteBehind {
 public:
  WriteBehind(TempFile* file, uint64_t max_queued_bytes);
  ~WriteBehind();
  WriteBehind(const WriteBehind&) = delete;
  WriteBehind& operator=(const WriteBehind&) = delete;

  absl::Status Append(std::string bytes);
  // AppendHole queues TempFile::AppendHole(n) (it takes no queue room: nothing is written).
  absl::Status AppendHole(uint64_t n);
  // AppendFrom queues TempFile::AppendFrom(src, offset, length) (no queue room either: nothing is
  // held in memory); `src` must outlive Finish.
  absl::Status AppendFrom(ReadableFile* src, uint64_t offset, uint64_t length);
  absl::Status Finish();

 private:
  struct Write {
    std::string bytes;
    uint64_t hole = 0;  // > 0: a hole of this many bytes instead of bytes
    ReadableFile* src = nullptr;  // non-null: src_length bytes of src from src_offset instead
    uint64_t src_offset = 0;
    uint64_t src_length = 0;
  };
  absl::Status Perform(const Write& w);
  absl::Status Queue(Write w);
  void Run();

  TempFile* const file_;
  const uint64_t max_queued_bytes_;
  absl::Mutex mu_;
  std::deque<Write> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // in the queue or being written
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_FS_WRITE_BEHIND_H_
