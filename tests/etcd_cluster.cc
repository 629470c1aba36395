#include "tests/etcd_cluster.h"

#include <signal.h>
#include <stdlib.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/numbers.h"

namespace converge::testing {
namespace {

std::string Name(int i) { return absl::StrCat("m", i + 1); }

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(const std::string& dir, int members,
                                                                const std::string& tls_dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("mkdir ", dir, ": ", ec.message()));
  // Unix socket paths are short (108 bytes): the sockets live in a directory of their own.
  char sockets[] = "/tmp/converge-etcd-XXXXXX";
  if (mkdtemp(sockets) == nullptr) return absl::InternalError("mkdtemp /tmp/converge-etcd-XXXXXX");
  std::unique_ptr<EtcdCluster> c(new EtcdCluster(dir, sockets, members, tls_dir));
  for (int i = 0; i < members; ++i) {
    if (absl::Status s = c->Spawn(i, /*initial=*/true); !s.ok()) return s;
  }
  for (const absl::Time until = absl::Now() + absl::Seconds(30); absl::Now() < until;) {
    if (c->Leader() >= 0) return c;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat("etcd elected no leader in 30 s; logs in ", dir));
}

EtcdCluster::~EtcdCluster() {
  for (auto& m : members_) {
    if (m != nullptr) m->Stop(SIGTERM, absl::Seconds(5));
  }
  std::error_code ec;
  std::filesystem::remove_all(sockets_, ec);
}

std::string EtcdCluster::endpoint(int i) const {
  return absl::StrCat(tls_dir_.empty() ? "unix:" : "unixs:", sockets_, "/c", i + 1, ":1");
}

CommandResult EtcdCluster::Etcdctl(int i, const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"/usr/bin/etcdctl",
                                   absl::StrCat("--endpoints=", tls_dir_.empty() ? "unix" : "unixs", "://", sockets_,
                                                "/c", i + 1, ":1")};
  if (!tls_dir_.empty()) {
    argv.push_back("--cacert=" + tls_dir_ + "/ca.crt");
    argv.push_back("--cert=" + tls_dir_ + "/service.crt");
    argv.push_back("--key=" + tls_dir_ + "/service.key");
    // etcdctl checks a unix socket's certificate against the socket's name ("c1:1") and has no
    // flag to name it: the helper's own checks skip that (the client under test does verify).
    argv.push_back("--insecure-skip-tls-verify");
  }
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, dir_, absl::Seconds(5));
}

std::string EtcdCluster::endpoints() const {
  std::vector<std::string> all;
  for (int i = 0; i < size(); ++i) all.push_back(endpoint(i));
  return absl::StrJoin(all, ",");
}

std::string EtcdCluster::log_path(int i) const { return absl::StrCat(dir_, "/", Name(i), ".log"); }

absl::Status EtcdCluster::Spawn(int i, bool initial) {
  std::vector<std::string> peers;
  for (int j = 0; j < size(); ++j) peers.push_back(absl::StrCat(Name(j), "=unix://p", j + 1, ":1"));
  // Socket names are relative to the working directory (etcd's unix URLs are "unix://name:port").
  const std::string client = absl::StrCat(tls_dir_.empty() ? "unix" : "unixs", "://c", i + 1, ":1");
  const std::string tls = tls_dir_.empty() ? ""
                                           : absl::StrCat(" --cert-file '", tls_dir_, "/service.crt' --key-file '", tls_dir_,
                                                          "/service.key' --client-cert-auth --trusted-ca-file '", tls_dir_,
                                                          "/ca.crt'");
  const std::string command = absl::StrCat(
      "cd '", sockets_, "' && exec /usr/bin/etcd --name ", Name(i), " --data-dir '", dir_, "/", Name(i), "'",
      " --listen-client-urls ", client, " --advertise-client-urls ", client, tls,
      " --listen-peer-urls unix://p", i + 1, ":1 --initial-advertise-peer-urls unix://p", i + 1, ":1",
      " --initial-cluster ", absl::StrJoin(peers, ","), " --initial-cluster-state ", initial ? "new" : "existing",
      " --initial-cluster-token converge-test --heartbeat-interval 50 --election-timeout 500 --log-level warn");
  absl::StatusOr<std::unique_ptr<ChildProcess>> p = ChildProcess::Start({"/bin/sh", "-c", command}, log_path(i));
  if (!p.ok()) return p.status();
  members_[i] = std::move(*p);
  return absl::OkStatus();
}

void EtcdCluster::Kill(int i) {
  if (members_[i] == nullptr) return;
  members_[i]->Stop(SIGKILL);
  members_[i].reset();
}

absl::Status EtcdCluster::Restart(int i) {
  if (members_[i] != nullptr) return absl::OkStatus();
  std::error_code ec;  // a member killed leaves its socket files behind; it would not bind them
  std::filesystem::remove(absl::StrCat(sockets_, "/c", i + 1, ":1"), ec);
  std::filesystem::remove(absl::StrCat(sockets_, "/p", i + 1, ":1"), ec);
  return Spawn(i, /*initial=*/false);
}

bool EtcdCluster::Healthy(int i) const {
  if (members_[i] == nullptr) return false;
  CommandResult r = Etcdctl(i, {"endpoint", "health"});
  return r.exit_code == 0;
}

int EtcdCluster::Leader() const {
  for (int i = 0; i < size(); ++i) {
    if (members_[i] == nullptr) continue;
    CommandResult r = Etcdctl(i, {"endpoint", "status", "-w", "fields"});
    if (r.exit_code != 0) continue;
    uint64_t id = 0, leader = 0;
    for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
      if (absl::ConsumePrefix(&line, "\"MemberID\" : ")) absl::SimpleAtoi(line, &id);
      if (absl::ConsumePrefix(&line, "\"Leader\" : ")) absl::SimpleAtoi(line, &leader);
    }
    if (leader == 0) continue;
    if (leader == id) return i;
    // Another member leads: find which one by its id.
    for (int j = 0; j < size(); ++j) {
      if (j == i || members_[j] == nullptr) continue;
      CommandResult o = Etcdctl(j, {"endpoint", "status", "-w", "fields"});
      if (absl::StrContains(o.out, absl::StrCat("\"MemberID\" : ", leader, "\n"))) return j;
    }
  }
  return -1;
}

}  // namespace converge::testing
