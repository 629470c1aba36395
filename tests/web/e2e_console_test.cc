// The web console in a real browser (Debian's headless Chromium driven over WebDriver) against
// real services and engines: an operator signs in, sees the fleet, approves a held mass delete
// and the devices apply it; a user signs in with a password, browses the namespace and a file's
// versions, resolves a conflict, and is refused another user's namespace; every page is
// checked by axe-core at 1280x800 and on a 390-px phone screen. Screenshots go to
// $CONVERGE_CONSOLE_SCREENSHOTS (docs/console when set by tools/console/screenshots) or the
// test's outputs.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"
#include "tests/process.h"
#include "tests/web/webdriver.h"

namespace converge::testing {
namespace {

constexpr char kPassword[] = "correct horse battery staple";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class E2eConsoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WebDriver::Available()) << "chromium and chromium-driver are not installed (tools/dev deps installs them)";
    dir_ = std::string(getenv("TEST_TMPDIR")) + "/console";
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ClusterOptions options;
    options.dir = dir_ + "/cluster";
    options.management_args = {"--console_listen=127.0.0.1:0", "--console_port_file=" + dir_ + "/console.port",
                               "--lag_sample_interval=1s"};
    auto cluster = Cluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    c_ = std::move(*cluster);
    absl::StatusOr<int> port = WaitForPortFile(dir_ + "/console.port", absl::Seconds(20));
    ASSERT_TRUE(port.ok()) << port.status();
    url_ = absl::StrCat("https://127.0.0.1:", *port, "/");
    ASSERT_TRUE(c_->AddEngine("laptop").ok());
    ASSERT_TRUE(c_->AddEngine("desktop").ok());
    // The user's password, from a file (never a command line); another user with a namespace.
    std::ofstream(dir_ + "/password") << kPassword;
    CommandResult r = c_->Convergectl({"users", "password", "e2e", "--password_file=" + dir_ + "/password"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(c_->Convergectl({"users", "create", "bob"}).exit_code, 0);
    ASSERT_EQ(c_->Convergectl({"namespaces", "create", "bobs", "--owner=bob"}).exit_code, 0);
    auto browser = WebDriver::Start(dir_);
    ASSERT_TRUE(browser.ok()) << browser.status();
    b_ = std::move(*browser);
    shots_ = getenv("CONVERGE_CONSOLE_SCREENSHOTS") != nullptr ? getenv("CONVERGE_CONSOLE_SCREENSHOTS")
                                                               : std::string(getenv("TEST_UNDECLARED_OUTPUTS_DIR"));
  }

  void SignInAsOperator() {
    ASSERT_TRUE(b_->Navigate(url_).ok());
    absl::StatusOr<std::string> token = b_->Find("#operator_token");
    ASSERT_TRUE(token.ok()) << token.status();
    ASSERT_TRUE(b_->Type(*token, Cluster::OperatorToken()).ok());
    ASSERT_TRUE(b_->Click(*b_->FindWithText("button", "Sign in as operator")).ok());
    ASSERT_TRUE(b_->WaitForText("Fleet").ok());
  }

  void SignInAsUser(const std::string& password) {
    ASSERT_TRUE(b_->Navigate(url_).ok());
    absl::StatusOr<std::string> user = b_->Find("#user_id");
    ASSERT_TRUE(user.ok()) << user.status();
    ASSERT_TRUE(b_->Type(*user, "e2e").ok());
    ASSERT_TRUE(b_->Type(*b_->Find("#password"), password).ok());
    ASSERT_TRUE(b_->Click(*b_->FindWithText("button", "Sign in")).ok());
  }

  void SignOut() {
    ASSERT_TRUE(b_->Click(*b_->FindWithText("button", "Sign out")).ok());
    ASSERT_TRUE(b_->Find("#user_id").ok());
  }

  // Go opens a page of the console by its hash route and waits for `text`.
  void Go(const std::string& route, const std::string& text) {
    ASSERT_TRUE(b_->Navigate(url_ + "#/" + route).ok());
    absl::Status shown = b_->WaitForText(text);
    ASSERT_TRUE(shown.ok()) << shown;
  }

  // Accessible checks the page with axe-core (WCAG 2 A and AA): no serious or critical violation.
  void ExpectAccessible(const std::string& page) {
    static const std::string axe = ReadAll(Runfile("tests/web/vendor/axe.min.js"));
    ASSERT_FALSE(axe.empty());
    ASSERT_TRUE(b_->Script(axe + "\nreturn typeof axe;").ok());
    absl::StatusOr<google::protobuf::Value> found = b_->ScriptAsync(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']}).then(r => done(r.violations"
        "  .filter(v => v.impact === 'serious' || v.impact === 'critical')"
        "  .map(v => v.id + ' (' + v.nodes.length + '): ' + v.nodes[0].html).join('\\n')),"
        "  e => done('axe failed: ' + e));",
        absl::Seconds(60));
    ASSERT_TRUE(found.ok()) << found.status();
    EXPECT_EQ(found->string_value(), "") << "on page " << page;
  }

  // Shot keeps a screenshot of the page at 1280x800 and on a phone (390 px), checking that the
  // page does not overflow the phone's width (wide tables scroll in their own box).
  void Shot(const std::string& name) {
    ExpectAccessible(name);
    ASSERT_TRUE(b_->Screenshot(absl::StrCat(shots_, "/", name, ".png")).ok());
    ASSERT_TRUE(b_->SetWindowSize(390, 844).ok());
    absl::SleepFor(absl::Milliseconds(300));
    absl::StatusOr<google::protobuf::Value> overflow =
        b_->Script("return document.documentElement.scrollWidth - document.documentElement.clientWidth;");
    ASSERT_TRUE(overflow.ok());
    EXPECT_LE(overflow->number_value(), 0) << name << " overflows a 390-px screen";
    ExpectAccessible(name + " on a phone");
    ASSERT_TRUE(b_->Screenshot(absl::StrCat(shots_, "/", name, "-phone.png")).ok());
    ASSERT_TRUE(b_->SetWindowSize(1280, 800).ok());
  }

  std::string dir_, url_, shots_;
  std::unique_ptr<Cluster> c_;
  std::unique_ptr<WebDriver> b_;
};

TEST_F(E2eConsoleTest, AnOperatorSeesTheFleetAndApprovesAHeldDelete) {
  for (int i = 0; i < 200; ++i) WriteFile(c_->folder(0) + absl::StrCat("/many/f", i), absl::StrCat("file ", i));
  ASSERT_TRUE(c_->WaitConverged(absl::Seconds(30)).ok());
  SignInAsOperator();
  ASSERT_TRUE(b_->WaitForText("laptop").ok());
  ASSERT_TRUE(b_->WaitForText("desktop").ok());
  ASSERT_TRUE(b_->WaitForText("in sync").ok());
  // The lag chart fills once it has two samples (one a second here); the page asks every 15 s.
  absl::SleepFor(absl::Seconds(2));
  ASSERT_TRUE(b_->Navigate(url_).ok());
  ASSERT_TRUE(b_->WaitForText("the slowest device is 0.0 s behind now").ok()) << *b_->PageText();
  ASSERT_TRUE(b_->Find("svg[role=img] polyline.lag").ok());
  Shot("fleet");

  // The laptop deletes 150 files: the store holds them; the page shows the hold.
  for (int i = 0; i < 150; ++i) std::filesystem::remove(c_->folder(0) + absl::StrCat("/many/f", i));
  Go("deletes", "Held mass deletes");
  ASSERT_TRUE(b_->FindWithText("td", "many/: 150", absl::Seconds(20)).ok()) << *b_->PageText();
  Shot("held-deletes");
  EXPECT_TRUE(std::filesystem::exists(c_->folder(1) + "/many/f0"));
  ASSERT_TRUE(b_->Click(*b_->FindWithText("button", "Approve")).ok());
  ASSERT_TRUE(b_->WaitForText("Approved: 150 deletes in shared").ok());
  ASSERT_TRUE(c_->WaitConverged(absl::Seconds(30)).ok());
  EXPECT_FALSE(std::filesystem::exists(c_->folder(1) + "/many/f0"));
  EXPECT_TRUE(std::filesystem::exists(c_->folder(1) + "/many/f199"));

  Go("namespace/shared", "dedup ratio");
  ASSERT_TRUE(b_->WaitForText("files").ok());
  Shot("namespace");
  Go("users", "Users and enrollment");
  // An enrollment token for two more devices, shown once.
  ASSERT_TRUE(b_->Type(*b_->Find("#enroll-user"), "e2e").ok());
  ASSERT_TRUE(b_->Click(*b_->FindWithText("button", "Create token")).ok());
  ASSERT_TRUE(b_->WaitForText("Enrollment token for e2e (shown once, 1 use(s)").ok()) << *b_->PageText();
  Shot("users");
  Go("shards", "Store shards");
  Shot("shards");

  // Revoking the desktop from the fleet page: management refuses it from then on.
  Go("", "Fleet");
  ASSERT_TRUE(b_->Script("window.confirm = () => true; return 1;").ok());
  ASSERT_TRUE(b_->Click(*b_->Find("button[aria-label='Revoke desktop']")).ok());
  ASSERT_TRUE(b_->WaitForText("Device desktop revoked.").ok());
  ASSERT_TRUE(b_->WaitForText("revoked").ok());
  EXPECT_TRUE(absl::StrContains(c_->Convergectl({"devices", "list"}).out, "revoked"))
      << c_->Convergectl({"devices", "list"}).out;
}

TEST_F(E2eConsoleTest, AUserBrowsesDownloadsAndRestoresVersions) {
  WriteFile(c_->folder(0) + "/docs/report.txt", "first draft");
  ASSERT_TRUE(c_->WaitConverged(absl::Seconds(30)).ok());
  absl::SleepFor(absl::Milliseconds(500));
  const int64_t between_drafts = absl::ToUnixMillis(absl::Now());
  absl::SleepFor(absl::Milliseconds(500));
  WriteFile(c_->folder(0) + "/docs/report.txt", "second draft, longer");
  ASSERT_TRUE(c_->WaitConverged(absl::Seconds(30)).ok());

  SignInAsUser("a wrong password!");
  ASSERT_TRUE(b_->WaitForText("wrong user or password").ok());
  SignInAsUser(kPassword);
  ASSERT_TRUE(b_->WaitForText("My devices").ok());
  ASSERT_TRUE(b_->WaitForText("laptop").ok());
  Shot("my-devices");

  Go("browse/shared", "docs/");
  ASSERT_TRUE(b_->Click(*b_->FindWithText("button", "docs/")).ok());
  ASSERT_TRUE(b_->WaitForText("report.txt").ok());
  ASSERT_TRUE(b_->Click(*b_->Find("button[aria-label='Versions of report.txt']")).ok());
  ASSERT_TRUE(b_->WaitForText("Versions of docs/report.txt").ok());
  // Both versions are listed, newest first, with their sizes (the folder's row says 20 B too:
  // wait for the versions' table itself).
  ASSERT_TRUE(b_->Find("button[aria-label='Restore version 1'], button[aria-label='Restore version 2']").ok());
  ASSERT_TRUE(b_->WaitForText("11 B").ok());
  Shot("browse");
  // The folder as it was between the drafts (what the "as of" field asks for).
  absl::StatusOr<google::protobuf::Value> then = b_->ScriptAsync(absl::StrCat(
      "const done = arguments[arguments.length - 1];"
      "fetch('/api/session').then(r => r.json()).then(s => fetch('/api/v1/ListFolder', {method: 'POST',"
      "  headers: {'X-CSRF-Token': s.csrf}, body: JSON.stringify({namespace_id: 'shared', folder: 'docs',"
      "  at_unix_ms: ", between_drafts, "})})).then(r => r.json()).then(j => done(j.entries.map(e => e.name + ':' + e.size).join()));"),
      absl::Seconds(10));
  ASSERT_TRUE(then.ok()) << then.status();
  EXPECT_EQ(then->string_value(), "report.txt:11");
  // Each version downloads as it was.
  absl::StatusOr<google::protobuf::Value> body = b_->ScriptAsync(
      "const done = arguments[arguments.length - 1];"
      "const a = [...document.querySelectorAll('a[download]')];"
      "Promise.all(a.map(x => fetch(x.href).then(r => r.text()))).then(t => done(t.join('|')));",
      absl::Seconds(10));
  ASSERT_TRUE(body.ok()) << body.status();
  // (The watcher may have caught the file empty, just created: a version of 0 bytes after them.)
  EXPECT_TRUE(absl::StartsWith(body->string_value(), "second draft, longer|first draft")) << body->string_value();
  // Restore the first draft: a new commit both devices apply.
  ASSERT_TRUE(b_->Script("window.confirm = () => true; return 1;").ok());
  // The first draft's row (11 bytes) has the Restore button to press.
  ASSERT_TRUE(b_->Script("[...document.querySelectorAll('tr')].find(r => r.innerText.includes('11 B'))"
                         ".querySelector('button').click(); return 1;").ok());
  ASSERT_TRUE(b_->WaitForText("your devices are applying it").ok()) << *b_->PageText();
  ASSERT_TRUE(WaitFor([&] { return ReadFile(c_->folder(1) + "/docs/report.txt") == "first draft"; }, absl::Seconds(15)))
      << ReadFile(c_->folder(1) + "/docs/report.txt");
  EXPECT_EQ(ReadFile(c_->folder(0) + "/docs/report.txt"), "first draft");
  ASSERT_TRUE(c_->WaitConverged(absl::Seconds(30)).ok());

}

TEST_F(E2eConsoleTest, AUserSettlesAConflictInOneClickAndIsRefusedAnotherUsersNamespace) {
  WriteFile(c_->folder(0) + "/docs/report.txt", "first draft");
  ASSERT_TRUE(c_->WaitConverged(absl::Seconds(30)).ok());
  SignInAsUser(kPassword);
  ASSERT_TRUE(b_->WaitForText("My devices").ok());
  // A conflict: both devices edit the file while the desktop is frozen.
  c_->PauseEngine(1);
  WriteFile(c_->folder(0) + "/docs/report.txt", "laptop's edit");
  absl::SleepFor(absl::Seconds(1));
  WriteFile(c_->folder(1) + "/docs/report.txt", "desktop's edit");
  c_->ResumeEngine(1);
  ASSERT_TRUE(c_->WaitConverged(absl::Seconds(30)).ok());
  Go("conflicts/shared", "The other edit, kept as a copy");
  ASSERT_TRUE(b_->WaitForText("docs/report.txt").ok());
  // Both sides, side by side: their sizes and who made them.
  ASSERT_TRUE(b_->WaitForText("13 B · by laptop").ok()) << *b_->PageText();
  ASSERT_TRUE(b_->WaitForText("14 B · by desktop").ok()) << *b_->PageText();
  Shot("conflicts");
  // One click keeps the other edit: it becomes the file on both devices, and the copy goes.
  ASSERT_TRUE(b_->Click(*b_->FindWithText("button", "Keep this one instead")).ok());
  ASSERT_TRUE(b_->WaitForText("Kept the other edit at docs/report.txt").ok()) << *b_->PageText();
  ASSERT_TRUE(b_->WaitForText("No open conflicts in shared").ok());
  CommandResult r = c_->Convergectl({"conflicts", "list", "shared"});
  EXPECT_FALSE(absl::StrContains(r.out, "report (conflict")) << r.out;
  ASSERT_TRUE(c_->WaitConverged(absl::Seconds(30)).ok());
  for (int e = 0; e < 2; ++e) {
    EXPECT_EQ(ReadFile(c_->folder(e) + "/docs/report.txt"), "desktop's edit");
    absl::StatusOr<Snapshot> files = Cluster::SnapshotFolder(c_->folder(e));
    ASSERT_TRUE(files.ok());
    EXPECT_EQ(files->size(), 2u) << "docs/ and docs/report.txt only";
  }

  // Another user's namespace: refused by the API, whatever the page asks.
  Go("namespace/bobs", "not one of yours");
  absl::StatusOr<google::protobuf::Value> status = b_->ScriptAsync(
      "const done = arguments[arguments.length - 1];"
      "fetch('/api/session').then(r => r.json()).then(s => fetch('/api/v1/ListFolder', {method: 'POST',"
      "  headers: {'X-CSRF-Token': s.csrf}, body: JSON.stringify({namespace_id: 'bobs'})}))"
      ".then(r => done(r.status));",
      absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->number_value(), 403);
  status = b_->ScriptAsync(
      "const done = arguments[arguments.length - 1];"
      "fetch('/api/download?namespace_id=bobs&path=a.txt&seq=1').then(r => done(r.status));",
      absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->number_value(), 403);
  // Without the CSRF token, nothing is done even for one's own namespace.
  status = b_->ScriptAsync(
      "const done = arguments[arguments.length - 1];"
      "fetch('/api/v1/ListFolder', {method: 'POST', body: JSON.stringify({namespace_id: 'shared'})})"
      ".then(r => done(r.status));",
      absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->number_value(), 403);
  // Operators' pages say so; their calls are refused.
  Go("users", "This page is for operators");
  SignOut();
}

}  // namespace
}  // namespace converge::testing
