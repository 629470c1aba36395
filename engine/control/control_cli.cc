#include "engine/control/control_cli.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/human_format.h"
#include "common/base/sha256.h"
#include "converge/engine/v1/control.grpc.pb.h"
#include "engine/fs/local_filesystem.h"

namespace converge::engine {
namespace {

// sun_path holds 108 bytes with the NUL.
constexpr size_t kMaxSocketPath = 100;

constexpr decltype(statfs::f_type) kFuseSuperMagic = 0x65735546;

std::string ShortSocketDir() { return absl::StrCat("/tmp/converge-", getuid()); }

// Named shows a device as "laptop (dev-a6e0d83b8e6adf2e)", or by its id alone when its name is
// not known.
std::string Named(const std::string& device_id, const std::string& name) {
  return name.empty() ? device_id : absl::StrCat(name, " (", device_id, ")");
}

std::string Named(const std::string& device_id, const google::protobuf::Map<std::string, std::string>& names) {
  auto it = names.find(device_id);
  return Named(device_id, it == names.end() ? "" : it->second);
}

std::string When(int64_t unix_ms) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixMillis(unix_ms), absl::UTCTimeZone());
}

int Fail(const grpc::Status& s, const std::string& folder) {
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    std::cerr << "converge-engine: no engine is running on " << folder << " (" << s.error_message() << ")\n";
  } else {
    std::cerr << "converge-engine: " << s.error_message() << "\n";
  }
  return 1;
}

// Passphrase: the recovery passphrase from --passphrase_file or $CONVERGE_RECOVERY_PASSPHRASE
// (never a command-line argument, which every local user can read), without a final newline.
absl::StatusOr<std::string> Passphrase(const ControlArgs& a) {
  std::string text;
  if (!a.passphrase_file.empty()) {
    std::ifstream in(a.passphrase_file);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", a.passphrase_file));
    std::getline(in, text);
  } else if (const char* env = getenv("CONVERGE_RECOVERY_PASSPHRASE"); env != nullptr) {
    text = env;
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

void PrintKeys(const v1::KeysResponse& r) {
  std::cout << "this device's key: " << r.device_fingerprint() << "\n";
  if (r.has_keyring()) {
    std::cout << "keyring: held here, id " << r.keyring_id() << ", epoch " << r.epoch() << "\n";
  } else {
    std::cout << "keyring: not held here"
              << (r.keyring_id().empty() ? " (the namespace has none yet: keys init makes it)"
                                         : absl::StrCat(" (the namespace's is ", r.keyring_id(), ")"))
              << "\n";
  }
  for (const auto& m : r.members()) {
    std::cout << absl::StrFormat("  %-40s %-18s fingerprint %s\n", Named(m.device_id(), m.device_name()),
                                 m.granted() ? absl::StrCat("holds epoch ", m.epoch()) : "waiting for approval",
                                 m.fingerprint());
  }
}

}  // namespace

int RunKeysCommand(const ControlArgs& a) {
  static const std::map<std::string, v1::KeysRequest::Action> kSteps = {
      {"status", v1::KeysRequest::STATUS},   {"init", v1::KeysRequest::INIT},
      {"request", v1::KeysRequest::REQUEST}, {"approve", v1::KeysRequest::APPROVE},
      {"accept", v1::KeysRequest::ACCEPT},   {"recover", v1::KeysRequest::RECOVER},
      {"rotate", v1::KeysRequest::ROTATE}};
  const auto step = a.args.empty() ? kSteps.end() : kSteps.find(a.args[0]);
  const bool approve = step != kSteps.end() && step->second == v1::KeysRequest::APPROVE;
  const bool needs_fingerprint = approve || (step != kSteps.end() && step->second == v1::KeysRequest::ACCEPT);
  if (step == kSteps.end() || a.args.size() != (approve ? 2u : 1u) || (needs_fingerprint && a.fingerprint.empty())) {
    std::cerr << "usage: converge-engine keys status|init|request|recover|rotate --folder=F\n"
                 "       converge-engine keys approve DEVICE --fingerprint=\"THE DEVICE'S, AS IT SHOWS IT\" --folder=F\n"
                 "       converge-engine keys accept --fingerprint=\"THE APPROVING DEVICE'S\" --folder=F\n"
                 "init, recover and rotate read the recovery passphrase from --passphrase_file or "
                 "$CONVERGE_RECOVERY_PASSPHRASE\n";
    return 2;
  }
  v1::KeysRequest req;
  req.set_action(step->second);
  if (approve) req.set_device_id(a.args[1]);
  req.set_fingerprint(a.fingerprint);
  if (step->second == v1::KeysRequest::INIT || step->second == v1::KeysRequest::RECOVER ||
      step->second == v1::KeysRequest::ROTATE) {
    absl::StatusOr<std::string> passphrase = Passphrase(a);
    if (!passphrase.ok() || (step->second == v1::KeysRequest::RECOVER && passphrase->empty())) {
      std::cerr << "converge-engine: "
                << (passphrase.ok() ? "recover needs the passphrase" : std::string(passphrase.status().message())) << "\n";
      return 2;
    }
    req.set_passphrase(*passphrase);
  }
  auto stub = v1::EngineControl::NewStub(
      grpc::CreateChannel(absl::StrCat("unix:", ControlSocketPath(a.folder)), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(2));
  v1::KeysResponse resp;
  grpc::Status s = stub->Keys(&ctx, req, &resp);
  if (!s.ok()) return Fail(s, a.folder);
  PrintKeys(resp);
  if (step->second == v1::KeysRequest::REQUEST) {
    std::cout << "asked for the keyring. On a device that holds it, check it lists this device with the "
                 "fingerprint above, then run there:\n  converge-engine keys approve DEVICE --fingerprint=\""
              << resp.device_fingerprint() << "\" --folder=...\n";
  }
  return 0;
}

std::string ControlSocketPath(const std::string& folder) {
  std::error_code ec;
  std::string absolute = std::filesystem::weakly_canonical(std::filesystem::absolute(folder, ec), ec).string();
  if (absolute.empty()) absolute = folder;
  const std::string beside = absl::StrCat(absolute, "/", kStateDirName, "/control.sock");
  // An on-demand folder's state directory shows through its FUSE mount, where no socket can be
  // reached: its engine serves at the short path.
  struct statfs fs {};
  const bool mounted_on_demand = statfs(absolute.c_str(), &fs) == 0 && fs.f_type == kFuseSuperMagic;
  if (beside.size() < kMaxSocketPath && !mounted_on_demand) return beside;
  return absl::StrCat(ShortSocketDir(), "/", DigestToHex(HashOf(absolute)).substr(0, 32), ".sock");
}

absl::StatusOr<std::string> PrepareControlSocket(const std::string& folder) {
  const std::string path = ControlSocketPath(folder);
  if (absl::StartsWith(path, ShortSocketDir())) {
    if (mkdir(ShortSocketDir().c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::UnavailableError(absl::StrCat("create ", ShortSocketDir(), ": ", strerror(errno)));
    }
    struct stat st;
    if (lstat(ShortSocketDir().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
        (st.st_mode & 077) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat(ShortSocketDir(), " is not a directory only this user can use: not serving control there"));
    }
  }
  std::error_code ec;
  std::filesystem::remove(path, ec);  // left by an engine that was killed
  return path;
}

absl::StatusOr<absl::Time> ParseWhen(const std::string& text, absl::Time now) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return t;
  absl::Duration ago;
  std::string d = text;
  int64_t days = 0;
  if (!d.empty() && d.back() == 'd' && absl::SimpleAtoi(d.substr(0, d.size() - 1), &days)) d = absl::StrCat(days * 24, "h");
  if (absl::ParseDuration(d, &ago) && ago >= absl::ZeroDuration()) return now - ago;
  return absl::InvalidArgumentError(absl::StrCat("'", text, "' is neither a time (2026-11-27T10:15:00Z) nor a duration ago (90m, 2h, 3d)"));
}

bool IsControlCommand(const std::string& command) {
  return command == "history" || command == "restore" || command == "conflicts" || command == "resolve" ||
         command == "keys";
}

int RunControlCommand(const std::string& command, const ControlArgs& a) {
  auto stub = v1::EngineControl::NewStub(
      grpc::CreateChannel(absl::StrCat("unix:", ControlSocketPath(a.folder)), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  if (command == "history") {
    if (a.args.size() != 1) {
      std::cerr << "usage: converge-engine history PATH --folder=F [--limit=N]\n";
      return 2;
    }
    v1::ListVersionsRequest req;
    req.set_path(a.args[0]);
    req.set_limit(a.limit);
    v1::ListVersionsResponse resp;
    grpc::Status s = stub->ListVersions(&ctx, req, &resp);
    if (!s.ok()) return Fail(s, a.folder);
    if (resp.versions_size() == 0) std::cout << "no kept version of " << a.args[0] << "\n";
    for (const auto& h : resp.versions()) {
      const auto& v = h.version();
      std::string what = v.deleted()                                           ? "deleted"
                         : v.kind() == common::v1::FILE_KIND_DIRECTORY        ? "directory"
                                                                              : HumanBytes(v.size());
      std::cout << absl::StrFormat("seq %-8d %s  %-10s by %s\n", v.seq(), When(h.committed_at_unix_ms()), what,
                                   Named(v.origin_device(), resp.device_names()));
    }
    return 0;
  }
  if (command == "restore") {
    if (a.args.size() > 1 || (a.seq == 0 && a.at.empty()) || (a.args.empty() && a.at.empty())) {
      std::cerr << "usage: converge-engine restore PATH --folder=F (--seq=N | --at=TIME)\n"
                   "       converge-engine restore --folder=F --at=TIME   (the whole folder)\n";
      return 2;
    }
    v1::RestoreRequest req;
    if (!a.args.empty()) req.set_path(a.args[0]);
    req.set_seq(a.seq);
    if (!a.at.empty()) {
      absl::StatusOr<absl::Time> at = ParseWhen(a.at, absl::Now());
      if (!at.ok()) {
        std::cerr << "converge-engine: " << at.status().message() << "\n";
        return 2;
      }
      req.set_at_unix_ms(absl::ToUnixMillis(*at));
    }
    v1::RestoreResponse resp;
    grpc::Status s = stub->Restore(&ctx, req, &resp);
    if (!s.ok()) return Fail(s, a.folder);
    std::cout << "restored " << resp.restored() << " path(s), deleted " << resp.deleted()
              << " made since (kept in history), in " << resp.commits_size() << " commit(s)";
    if (resp.commits_size() > 0) std::cout << " up to seq " << resp.commits(resp.commits_size() - 1);
    std::cout << "\n";
    return 0;
  }
  if (command == "conflicts") {
    v1::ListConflictsRequest req;
    req.set_include_resolved(a.all);
    store::v1::ListConflictsResponse resp;
    grpc::Status s = stub->ListConflicts(&ctx, req, &resp);
    if (!s.ok()) return Fail(s, a.folder);
    if (resp.conflicts_size() == 0) std::cout << (a.all ? "no conflicts\n" : "no open conflicts\n");
    for (const auto& c : resp.conflicts()) {
      std::cout << c.copy_path() << "\n    the losing edit of " << c.original_path() << ", kept by " << Named(c.device_id(), c.device_name())
                << " at " << When(c.created_at_unix_ms()) << " (seq " << c.seq() << ")";
      if (c.resolved()) std::cout << "; resolved " << When(c.resolved_at_unix_ms()) << " (" << c.resolved_by() << ")";
      std::cout << "\n";
    }
    return 0;
  }
  if (a.args.size() != 1) {
    std::cerr << "usage: converge-engine resolve COPY_PATH --folder=F\n";
    return 2;
  }
  v1::ResolveConflictRequest req;
  req.set_copy_path(a.args[0]);
  store::v1::Conflict resp;
  grpc::Status s = stub->ResolveConflict(&ctx, req, &resp);
  if (!s.ok()) return Fail(s, a.folder);
  std::cout << "resolved: " << resp.copy_path() << " (the copy stays until you delete it)\n";
  return 0;
}

}  // namespace converge::engine
