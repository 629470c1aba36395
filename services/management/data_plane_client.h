// GrpcDataPlane: tells converge-store about namespaces and their members over gRPC. With
// several store shards, each call goes to the shard of the namespace's owner (ShardMap).
#ifndef CONVERGE_SERVICES_MANAGEMENT_DATA_PLANE_CLIENT_H_
#define CONVERGE_SERVICES_MANAGEMENT_DATA_PLANE_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "converge/notification/v1/notification.grpc.pb.h"
#include "converge/store/v1/store.grpc.pb.h"
#include "absl/synchronization/mutex.h"
#include "services/management/namespace_mover.h"
#include "services/management/registry.h"
#include "services/management/shard_list.h"

namespace converge::management {

class GrpcDataPlane : public DataPlane, public MoveTransport {
 public:
  // `credentials`: how management reaches the store and notify (null: plaintext). An empty
  // `notify_address` tells no notification service about revocations.
  // `shards`: the store shards, in shard order (only ever appended, also while it serves); not owned.
  GrpcDataPlane(const ShardList* shards, const std::string& notify_address, std::string service_token,
                std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);
  // The map from users and namespaces to shards (needed with more than one shard); not owned.
  void set_shard_map(ShardMap* map) { shard_map_ = map; }
  uint32_t shard_count() const override { return static_cast<uint32_t>(shards_->size()); }  // both bases
  bool AcceptsNewUsers(uint32_t shard) const override { return !accepts_users_ || accepts_users_(shard); }
  // Which shards take new users (unset: all).
  void set_accepts_users(std::function<bool(uint32_t)> accepts) { accepts_users_ = std::move(accepts); }
  // Returns the store's status (Unavailable if it cannot be reached within 5 s).
  absl::Status RegisterNamespace(const std::string& ns, const std::string& owner_user_id,
                                 const std::vector<std::string>& member_device_ids, bool encrypted) override;
  absl::StatusOr<uint64_t> SetQuota(const std::string& user_id, uint64_t quota_bytes) override;
  absl::Status RevokeDevices(const std::vector<std::string>& device_ids, absl::Time until) override;
  absl::StatusOr<NamespaceStats> Usage(const std::string& ns) override;
  absl::StatusOr<std::vector<HeldDelete>> ListHeldDeletes(const std::string& ns) override;
  absl::StatusOr<HeldDelete> ResolveHeldDelete(const std::string& ns, const std::string& id, bool approve) override;
  absl::StatusOr<std::vector<ConflictRecord>> ListConflicts(const std::string& ns, bool include_resolved) override;
  absl::StatusOr<ConflictRecord> ResolveConflict(const std::string& ns, const std::string& copy_path) override;
  absl::StatusOr<CompactionResult> Compact(const std::string& ns) override;
  absl::Status Evict(const std::string& ns, const std::string& device_id) override;
  absl::StatusOr<uint64_t> FilesAt(const std::string& ns, int64_t at_unix_ms, const std::string& prefix,
                                   const std::function<bool(const FileVersion&)>& fn) override;
  absl::StatusOr<std::vector<HistoryVersion>> Versions(const std::string& ns, const std::string& path,
                                                       uint32_t limit) override;
  absl::StatusOr<uint64_t> Restore(const std::string& ns, const std::string& path, uint64_t seq) override;
  absl::StatusOr<uint64_t> KeepConflictSide(const std::string& ns, const std::string& copy_path, bool keep_copy) override;
  absl::Status ReadVersion(const std::string& ns, const std::string& path, uint64_t seq,
                           const std::function<bool(uint64_t size, const std::string& bytes)>& fn) override;
  // MoveTransport (data_plane_moves.cc).
  absl::StatusOr<uint64_t> SetGate(uint32_t shard, const std::string& ns, MoveGate gate, bool drop_records) override;
  absl::StatusOr<uint64_t> Copy(uint32_t from, uint32_t to, const std::string& ns, uint64_t after_seq,
                                uint64_t* bytes) override;

 private:
  // The stub of the shard holding a user's / a namespace's data.
  absl::StatusOr<store::v1::StoreService::Stub*> ForShard(const std::function<absl::StatusOr<uint32_t>()>& shard_of,
                                                          const std::string& what);
  absl::StatusOr<store::v1::StoreService::Stub*> ForUser(const std::string& user_id);
  absl::StatusOr<store::v1::StoreService::Stub*> ForNamespace(const std::string& ns);

  // The stub of shard i, made the first time it is needed.
  absl::StatusOr<store::v1::StoreService::Stub*> Stub(uint32_t shard, const std::string& what);

  const ShardList* const shards_;
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<store::v1::StoreService::Stub>> stubs_ ABSL_GUARDED_BY(mu_);
  ShardMap* shard_map_ = nullptr;
  std::function<bool(uint32_t)> accepts_users_;
  std::unique_ptr<notification::v1::NotificationService::Stub> notify_;
  const std::string service_token_;
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_DATA_PLANE_CLIENT_H_
