#include "engine/control/control_service.h"

#include "common/model/path.h"
#include "common/rpc/grpc_status.h"
#include "common/wire/wire.h"

namespace converge::engine {
namespace {

void ToProto(const ConflictRecord& c, const std::string& device_name, store::v1::Conflict* p) {
  p->set_copy_path(c.copy_path);
  p->set_original_path(c.original_path);
  p->set_device_id(c.device);
  p->set_seq(c.seq);
  p->set_created_at_unix_ms(c.created_at_unix_ms);
  p->set_resolved(c.resolved);
  p->set_resolved_at_unix_ms(c.resolved_at_unix_ms);
  p->set_resolved_by(c.resolved_by);
  p->set_device_name(device_name);
}

}  // namespace

grpc::Status ControlService::ListVersions(grpc::ServerContext*, const v1::ListVersionsRequest* req,
                                          v1::ListVersionsResponse* resp) {
  absl::StatusOr<std::vector<HistoryVersion>> versions = history_->Versions(req->path(), req->limit());
  if (!versions.ok()) return ToGrpcStatus(versions.status());
  for (const HistoryVersion& v : *versions) {
    store::v1::HistoryVersion* out = resp->add_versions();
    wire::FileVersionToProto(v.version, out->mutable_version());
    out->set_committed_at_unix_ms(v.committed_at_unix_ms);
    const std::string& device = v.version.origin_device;
    if (!device.empty() && !resp->device_names().contains(device)) {
      if (std::string name = name_of_(device); !name.empty()) (*resp->mutable_device_names())[device] = name;
    }
  }
  return grpc::Status::OK;
}

grpc::Status ControlService::Restore(grpc::ServerContext*, const v1::RestoreRequest* req, v1::RestoreResponse* resp) {
  absl::StatusOr<RestoreResult> r;
  const absl::Time at = absl::FromUnixMillis(req->at_unix_ms());
  if (req->path().empty()) {
    if (req->at_unix_ms() <= 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "restoring the whole folder needs a time");
    }
    r = history_->RestoreFolder(at);
  } else {
    if (absl::Status s = ValidateRelativePath(req->path()); !s.ok()) return ToGrpcStatus(s);
    if (req->seq() == 0 && req->at_unix_ms() <= 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "say which version: a seq or a time");
    }
    r = history_->RestorePath(req->path(), req->seq() == 0 ? std::nullopt : std::optional<uint64_t>(req->seq()), at);
  }
  if (!r.ok()) return ToGrpcStatus(r.status());
  for (uint64_t seq : r->commits) resp->add_commits(seq);
  resp->set_restored(r->restored);
  resp->set_deleted(r->deleted);
  return grpc::Status::OK;
}

grpc::Status ControlService::ListConflicts(grpc::ServerContext*, const v1::ListConflictsRequest* req,
                                           store::v1::ListConflictsResponse* resp) {
  absl::StatusOr<std::vector<ConflictRecord>> conflicts = history_->Conflicts(req->include_resolved());
  if (!conflicts.ok()) return ToGrpcStatus(conflicts.status());
  for (const ConflictRecord& c : *conflicts) ToProto(c, name_of_(c.device), resp->add_conflicts());
  return grpc::Status::OK;
}

grpc::Status ControlService::ResolveConflict(grpc::ServerContext*, const v1::ResolveConflictRequest* req,
                                             store::v1::Conflict* resp) {
  if (absl::Status s = ValidateRelativePath(req->copy_path()); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<ConflictRecord> c = history_->Resolve(req->copy_path());
  if (!c.ok()) return ToGrpcStatus(c.status());
  ToProto(*c, name_of_(c->device), resp);
  return grpc::Status::OK;
}

grpc::Status ControlService::Keys(grpc::ServerContext*, const v1::KeysRequest* req, v1::KeysResponse* resp) {
  absl::StatusOr<NamespaceKeys*> keys =
      keys_of_ ? keys_of_() : absl::StatusOr<NamespaceKeys*>(absl::UnimplementedError("this engine keeps no keys"));
  if (!keys.ok()) return ToGrpcStatus(keys.status());
  absl::StatusOr<KeysStatus> status;
  switch (req->action()) {
    case v1::KeysRequest::INIT: status = (*keys)->Init(req->passphrase()); break;
    case v1::KeysRequest::REQUEST: {
      absl::StatusOr<std::string> fingerprint = (*keys)->Request();
      status = fingerprint.ok() ? (*keys)->Status() : absl::StatusOr<KeysStatus>(fingerprint.status());
      break;
    }
    case v1::KeysRequest::APPROVE: {
      absl::Status s = (*keys)->Approve(req->device_id(), req->fingerprint());
      status = s.ok() ? (*keys)->Status() : absl::StatusOr<KeysStatus>(s);
      break;
    }
    case v1::KeysRequest::ACCEPT: status = (*keys)->Accept(req->fingerprint()); break;
    case v1::KeysRequest::RECOVER: status = (*keys)->Recover(req->passphrase()); break;
    case v1::KeysRequest::ROTATE: status = (*keys)->Rotate(req->passphrase()); break;
    default: status = (*keys)->Status(); break;
  }
  if (!status.ok()) return ToGrpcStatus(status.status());
  resp->set_device_fingerprint(status->device_fingerprint);
  resp->set_has_keyring(status->has_keyring);
  resp->set_keyring_id(status->keyring_id);
  resp->set_epoch(status->epoch);
  for (const KeysStatus::Member& m : status->members) {
    v1::KeysResponse::Member* p = resp->add_members();
    p->set_device_id(m.device_id);
    p->set_device_name(m.device_name);
    p->set_fingerprint(m.fingerprint);
    p->set_granted(m.granted);
    p->set_epoch(m.epoch);
  }
  return grpc::Status::OK;
}

}  // namespace converge::engine
