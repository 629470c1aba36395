// ManagementService's calls for people (the web console): who a user token's person is and which
// namespaces it may see, and browsing a namespace's folders and versions over FolderView.
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_status.h"
#include "services/management/management_service.h"

namespace converge::management {
namespace {

void ToProto(const FolderEntry& e, v1::FolderEntry* p) {
  p->set_name(e.name);
  p->set_directory(e.kind == FileKind::kDirectory);
  p->set_symlink(e.kind == FileKind::kSymlink);
  p->set_size(e.size);
  p->set_mtime_unix_ms(e.mtime_ns / 1'000'000);
  p->set_seq(e.seq);
  p->set_deleted(e.deleted);
  p->set_device(e.origin_device);
}

void ToProto(const HistoryVersion& h, v1::FileVersionInfo* p) {
  const FileVersion& v = h.version;
  p->set_seq(v.seq);
  p->set_committed_at_unix_ms(h.committed_at_unix_ms);
  p->set_size(v.size);
  p->set_mtime_unix_ms(v.mtime_ns / 1'000'000);
  p->set_deleted(v.deleted);
  p->set_directory(v.kind == FileKind::kDirectory);
  p->set_device(v.origin_device);
  if (v.kind == FileKind::kFile && !v.deleted) {
    p->set_content_sha256(absl::BytesToHexString(
        absl::string_view(reinterpret_cast<const char*>(v.content_sha256.data()), v.content_sha256.size())));
  }
}

}  // namespace

absl::StatusOr<std::string> ManagementService::OperatorOrUser(const grpc::ServerContext& ctx) const {
  if (auth_.IsOperator(ctx)) return std::string();
  const std::string bearer = BearerOf(ctx);
  if (bearer.rfind(kUserTokenPrefix, 0) != 0 || !auth_.verifies_devices()) {
    absl::Status op = auth_.RequireOperator(ctx);
    return op.ok() ? std::string() : absl::StatusOr<std::string>(op);
  }
  absl::StatusOr<std::string> user_id = auth_.VerifyUser(ctx);
  if (!user_id.ok()) return user_id.status();
  absl::StatusOr<User> user = registry_->GetUser(*user_id);
  if (!user.ok()) return absl::UnauthenticatedError(absl::StrCat("the user token's user '", *user_id, "' is gone"));
  if (user->disabled) return absl::PermissionDeniedError(absl::StrCat("user '", *user_id, "' is disabled"));
  return *user_id;
}

absl::StatusOr<std::string> ManagementService::OperatorOrUserOf(const grpc::ServerContext& ctx,
                                                                const std::string& ns) const {
  absl::StatusOr<std::string> who = OperatorOrUser(ctx);
  if (!who.ok() || who->empty()) return who;
  absl::StatusOr<Namespace> n = registry_->GetNamespace(ns);
  const bool member = n.ok() && (n->owner_user_id == *who || std::find(n->shared_with.begin(), n->shared_with.end(),
                                                                       *who) != n->shared_with.end());
  // An unknown namespace is refused as one of someone else's: a user learns nothing of others' names.
  if (!member) return absl::PermissionDeniedError(absl::StrCat("namespace '", ns, "' is not one of yours"));
  return who;
}

absl::StatusOr<std::string> ManagementService::ForUser(const grpc::ServerContext& ctx,
                                                       const std::string& requested) const {
  absl::StatusOr<std::string> who = OperatorOrUser(ctx);
  if (!who.ok()) return who.status();
  if (who->empty()) return requested;
  if (!requested.empty() && requested != *who) {
    return absl::PermissionDeniedError("a user may ask only about itself");
  }
  return who;
}

grpc::Status ManagementService::ListFolder(grpc::ServerContext* ctx, const v1::ListFolderRequest* req,
                                           v1::ListFolderResponse* resp) {
  if (absl::StatusOr<std::string> who = OperatorOrUserOf(*ctx, req->namespace_id()); !who.ok()) {
    return ToGrpcStatus(who.status());
  }
  std::optional<absl::Time> at;
  if (req->at_unix_ms() != 0) at = absl::FromUnixMillis(req->at_unix_ms());
  absl::StatusOr<FolderListing> listing =
      folders_.Folder(req->namespace_id(), req->folder(), at, req->include_deleted(), req->limit());
  if (!listing.ok()) return ToGrpcStatus(listing.status());
  resp->set_head_seq(listing->head_seq);
  resp->set_truncated(listing->truncated);
  for (const FolderEntry& e : listing->entries) {
    v1::FolderEntry* p = resp->add_entries();
    ToProto(e, p);
    if (!e.origin_device.empty()) p->set_device_name(fleet_.DeviceName(e.origin_device));
  }
  return grpc::Status::OK;
}

grpc::Status ManagementService::ListFileVersions(grpc::ServerContext* ctx, const v1::ListFileVersionsRequest* req,
                                                 v1::ListFileVersionsResponse* resp) {
  if (absl::StatusOr<std::string> who = OperatorOrUserOf(*ctx, req->namespace_id()); !who.ok()) {
    return ToGrpcStatus(who.status());
  }
  absl::StatusOr<std::vector<HistoryVersion>> versions =
      folders_.Versions(req->namespace_id(), req->path(), req->limit());
  if (!versions.ok()) return ToGrpcStatus(versions.status());
  for (const HistoryVersion& h : *versions) {
    v1::FileVersionInfo* p = resp->add_versions();
    ToProto(h, p);
    p->set_device_name(fleet_.DeviceName(h.version.origin_device));
  }
  return grpc::Status::OK;
}

grpc::Status ManagementService::RestoreVersion(grpc::ServerContext* ctx, const v1::RestoreVersionRequest* req,
                                               v1::RestoreVersionResponse* resp) {
  if (absl::StatusOr<std::string> who = OperatorOrUserOf(*ctx, req->namespace_id()); !who.ok()) {
    return ToGrpcStatus(who.status());
  }
  absl::StatusOr<uint64_t> seq = folders_.Restore(req->namespace_id(), req->path(), req->seq());
  if (!seq.ok()) return ToGrpcStatus(seq.status());
  resp->set_seq(*seq);
  return grpc::Status::OK;
}

grpc::Status ManagementService::GetLagHistory(grpc::ServerContext* ctx, const v1::GetLagHistoryRequest* req,
                                              v1::LagHistory* resp) {
  if (absl::Status s = auth_.RequireOperator(*ctx); !s.ok()) return ToGrpcStatus(s);
  if (lag_ == nullptr) return grpc::Status::OK;
  for (const auto& [ns, points] : lag_->Series(req->namespace_id())) {
    v1::NamespaceLag* n = resp->add_namespaces();
    n->set_namespace_id(ns);
    for (const LagPoint& p : points) {
      v1::LagPoint* q = n->add_points();
      q->set_at_unix_ms(p.at_unix_ms);
      q->set_max_lag_seconds(p.max_lag_seconds);
      q->set_lag_commits(p.lag_commits);
      q->set_devices_behind(p.devices_behind);
      q->set_devices(p.devices);
    }
  }
  return grpc::Status::OK;
}

grpc::Status ManagementService::DownloadVersion(grpc::ServerContext* ctx, const v1::DownloadVersionRequest* req,
                                                grpc::ServerWriter<v1::DownloadVersionResponse>* writer) {
  if (absl::StatusOr<std::string> who = OperatorOrUserOf(*ctx, req->namespace_id()); !who.ok()) {
    return ToGrpcStatus(who.status());
  }
  v1::DownloadVersionResponse piece;
  absl::Status read = folders_.Read(req->namespace_id(), req->path(), req->seq(),
                                    [&](uint64_t size, const std::string& bytes) {
                                      if (ctx->IsCancelled()) return false;
                                      piece.set_size(size);
                                      piece.set_data(bytes);
                                      return writer->Write(piece);
                                    });
  return ToGrpcStatus(read);
}

}  // namespace converge::management
