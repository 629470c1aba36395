#include "common/wire/store_wire.h"

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/model/conflict_name.h"
#include "common/wire/wire.h"

namespace converge::wire {

void NamespaceStatsToProto(const NamespaceStats& s, store::v1::GetNamespaceStatsResponse* p) {
  p->set_head_seq(s.head_seq);
  p->set_live_files(s.live_files);
  p->set_live_bytes(s.live_bytes);
  p->set_unique_chunks(s.unique_chunks);
  p->set_unique_chunk_bytes(s.unique_chunk_bytes);
  p->set_open_conflicts(s.open_conflicts);
  p->set_watermark(s.watermark);
  p->set_compacted_through(s.compacted_through);
  p->set_encrypted(s.encrypted);
  p->set_converted_at(s.converted_at);
  for (const std::string& path : s.conflict_paths) p->add_conflict_paths(path);
  for (const DeviceCursor& d : s.devices) {
    store::v1::DeviceCursor* c = p->add_cursors();
    c->set_device_id(d.device_id);
    c->set_acked_seq(d.acked_seq);
    c->set_last_seen_unix_ms(d.last_seen_unix_ms);
    c->set_software_version(d.software_version);
    c->set_lag_commits(d.lag_commits);
    c->set_lag_bytes(d.lag_bytes);
    c->set_lag_seconds(d.lag_seconds);
    c->set_evicted(d.evicted);
    c->set_pins_watermark(d.pins_watermark);
    c->set_blocked_count(d.blocked.count);
    for (const std::string& b : d.blocked.sample) c->add_blocked(b);
  }
}

NamespaceStats NamespaceStatsFromProto(const store::v1::GetNamespaceStatsResponse& p) {
  NamespaceStats s;
  s.head_seq = p.head_seq();
  s.live_files = p.live_files();
  s.live_bytes = p.live_bytes();
  s.unique_chunks = p.unique_chunks();
  s.unique_chunk_bytes = p.unique_chunk_bytes();
  s.open_conflicts = p.open_conflicts();
  s.watermark = p.watermark();
  s.compacted_through = p.compacted_through();
  s.encrypted = p.encrypted();
  s.converted_at = p.converted_at();
  s.conflict_paths.assign(p.conflict_paths().begin(), p.conflict_paths().end());
  for (const store::v1::DeviceCursor& c : p.cursors()) {
    DeviceCursor d;
    d.device_id = c.device_id();
    d.acked_seq = c.acked_seq();
    d.last_seen_unix_ms = c.last_seen_unix_ms();
    d.software_version = c.software_version();
    d.lag_commits = c.lag_commits();
    d.lag_bytes = c.lag_bytes();
    d.lag_seconds = c.lag_seconds();
    d.evicted = c.evicted();
    d.pins_watermark = c.pins_watermark();
    d.blocked.count = c.blocked_count();
    d.blocked.sample.assign(c.blocked().begin(), c.blocked().end());
    s.devices.push_back(std::move(d));
  }
  return s;
}

void CompactionToProto(const CompactionResult& r, store::v1::CompactResponse* p) {
  p->set_watermark(r.watermark);
  p->set_compacted_through(r.compacted_through);
  p->set_log_entries_dropped(r.log_entries_dropped);
  p->set_versions_dropped(r.versions_dropped);
  p->set_tombstones_dropped(r.tombstones_dropped);
  for (const std::string& d : r.pinned_by) p->add_pinned_by(d);
  p->set_chunks_dropped(r.chunks_dropped);
  p->set_bytes_dropped(r.bytes_dropped);
}

CompactionResult CompactionFromProto(const store::v1::CompactResponse& p) {
  CompactionResult r;
  r.watermark = p.watermark();
  r.compacted_through = p.compacted_through();
  r.log_entries_dropped = p.log_entries_dropped();
  r.versions_dropped = p.versions_dropped();
  r.tombstones_dropped = p.tombstones_dropped();
  r.pinned_by.assign(p.pinned_by().begin(), p.pinned_by().end());
  r.chunks_dropped = p.chunks_dropped();
  r.bytes_dropped = p.bytes_dropped();
  return r;
}

void HeldDeleteToProto(const HeldDelete& h, store::v1::HeldDelete* p) {
  p->set_id(h.id);
  p->set_namespace_id(h.namespace_id);
  p->set_device_id(h.device);
  switch (h.state) {
    case HeldDelete::State::kPending: p->set_state(store::v1::HeldDelete::PENDING); break;
    case HeldDelete::State::kApproved: p->set_state(store::v1::HeldDelete::APPROVED); break;
    case HeldDelete::State::kRejected: p->set_state(store::v1::HeldDelete::REJECTED); break;
    case HeldDelete::State::kApplied: p->set_state(store::v1::HeldDelete::APPLIED); break;
    case HeldDelete::State::kRestored: p->set_state(store::v1::HeldDelete::RESTORED); break;
  }
  p->set_created_at_unix_ms(h.created_at_unix_ms);
  p->set_resolved_at_unix_ms(h.resolved_at_unix_ms);
  p->set_deletes(h.deletes);
  p->set_live_entries(h.live_entries);
  p->set_settled(h.settled);
  for (const std::string& s : h.sample) p->add_sample_paths(s);
  for (const auto& [folder, files] : h.top_folders) {
    store::v1::FolderCount* f = p->add_top_folders();
    f->set_path(folder);
    f->set_files(files);
  }
}

absl::StatusOr<HeldDelete> HeldDeleteFromProto(const store::v1::HeldDelete& p) {
  HeldDelete h;
  h.id = p.id();
  h.namespace_id = p.namespace_id();
  h.device = p.device_id();
  switch (p.state()) {
    case store::v1::HeldDelete::PENDING: h.state = HeldDelete::State::kPending; break;
    case store::v1::HeldDelete::APPROVED: h.state = HeldDelete::State::kApproved; break;
    case store::v1::HeldDelete::REJECTED: h.state = HeldDelete::State::kRejected; break;
    case store::v1::HeldDelete::APPLIED: h.state = HeldDelete::State::kApplied; break;
    case store::v1::HeldDelete::RESTORED: h.state = HeldDelete::State::kRestored; break;
    default: return absl::InvalidArgumentError(absl::StrCat("held delete ", p.id(), " in unknown state ", p.state()));
  }
  h.created_at_unix_ms = p.created_at_unix_ms();
  h.resolved_at_unix_ms = p.resolved_at_unix_ms();
  h.deletes = p.deletes();
  h.live_entries = p.live_entries();
  h.settled = p.settled();
  h.sample.assign(p.sample_paths().begin(), p.sample_paths().end());
  for (const store::v1::FolderCount& f : p.top_folders()) h.top_folders.emplace_back(f.path(), f.files());
  return h;
}

void ConflictToProto(const ConflictRecord& r, store::v1::Conflict* p) {
  p->set_copy_path(r.copy_path);
  p->set_original_path(r.original_path);
  p->set_device_id(r.device);
  p->set_seq(r.seq);
  p->set_created_at_unix_ms(r.created_at_unix_ms);
  p->set_resolved(r.resolved);
  p->set_resolved_at_unix_ms(r.resolved_at_unix_ms);
  p->set_resolved_by(r.resolved_by);
  // The name the copy's own name gives its device (made by that device's engine).
  std::optional<ConflictCopyName> name = ParseConflictName(r.copy_path);
  if (name.has_value() && absl::StartsWith(name->device, r.device)) p->set_device_name(name->device_label);
}

ConflictRecord ConflictFromProto(const std::string& namespace_id, const store::v1::Conflict& p) {
  return ConflictRecord{namespace_id, p.copy_path(),  p.original_path(),       p.device_id(),  p.seq(),
                        p.created_at_unix_ms(), p.resolved(), p.resolved_at_unix_ms(), p.resolved_by()};
}

void HistoryVersionToProto(const HistoryVersion& h, store::v1::HistoryVersion* p) {
  FileVersionToProto(h.version, p->mutable_version());
  p->set_committed_at_unix_ms(h.committed_at_unix_ms);
}

absl::StatusOr<HistoryVersion> HistoryVersionFromProto(const store::v1::HistoryVersion& p) {
  HistoryVersion h;
  CONVERGE_ASSIGN_OR_RETURN(h.version, FileVersionFromProto(p.version()));
  h.committed_at_unix_ms = p.committed_at_unix_ms();
  return h;
}

}  // namespace converge::wire
