// Test helper: a real etcd cluster (Debian's etcd-server) of N members on this machine, talking
// over unix sockets in a directory of /tmp (no ports to pick), each member a child process stopped by
// PID.
#ifndef CONVERGE_TESTS_ETCD_CLUSTER_H_
#define CONVERGE_TESTS_ETCD_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/process.h"

namespace converge::testing {

class EtcdCluster {
 public:
  // Start runs `members` members with data and sockets under `dir` and waits until they answer.
  // With `tls_dir` (tools/certs/make-certs' files), clients must use TLS and present a
  // certificate of its CA (etcd's --client-cert-auth); the endpoints are then "unixs:".
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(const std::string& dir, int members,
                                                            const std::string& tls_dir = "");
  ~EtcdCluster();

  // The client endpoints of all members ("unix:<dir>/c1:1,..."), or of member i alone.
  std::string endpoints() const;
  std::string endpoint(int i) const;
  int size() const { return static_cast<int>(members_.size()); }
  // Kill stops member i with SIGKILL; Restart starts it again on its data.
  void Kill(int i);
  absl::Status Restart(int i);
  bool running(int i) const { return members_[i] != nullptr; }
  // Healthy: member i answers and has a leader (etcdctl endpoint health).
  bool Healthy(int i) const;
  // The index of the member that is the leader now (-1 if none answers).
  int Leader() const;
  std::string log_path(int i) const;

 private:
  EtcdCluster(std::string dir, std::string sockets, int members, std::string tls_dir)
      : dir_(std::move(dir)), sockets_(std::move(sockets)), tls_dir_(std::move(tls_dir)), members_(members) {}
  absl::Status Spawn(int i, bool initial);
  // Etcdctl runs etcdctl against member i.
  CommandResult Etcdctl(int i, const std::vector<std::string>& args) const;

  const std::string dir_;      // data and logs
  const std::string sockets_;  // the members' client and peer sockets
  const std::string tls_dir_;  // empty: plaintext
  std::vector<std::unique_ptr<ChildProcess>> members_;
};

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_ETCD_CLUSTER_H_
