// WebDriver: drives the system's Chromium (Debian's chromium and chromium-driver), headless,
// through the W3C WebDriver protocol that chromedriver speaks over HTTP — for the web console's
// browser tests. No Selenium: a few calls over cpp-httplib, JSON through protobuf's Struct.
//
//   auto browser = WebDriver::Start(dir);
//   (*browser)->Navigate("https://127.0.0.1:8443/");
//   std::string input = *(*browser)->Find("#user_id");
//   (*browser)->Type(input, "alice");
//
// Certificates are not checked (the tests' CA is their own). Not thread-safe.
#ifndef CONVERGE_TESTS_WEB_WEBDRIVER_H_
#define CONVERGE_TESTS_WEB_WEBDRIVER_H_

#include <google/protobuf/struct.pb.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/process.h"

namespace converge::testing {

class WebDriver {
 public:
  // Available: whether chromium and chromedriver are installed.
  static bool Available();
  // Start runs chromedriver (logs under `dir`) and opens a headless browser of 1280x800.
  static absl::StatusOr<std::unique_ptr<WebDriver>> Start(const std::string& dir);
  ~WebDriver();

  absl::Status Navigate(const std::string& url);
  absl::Status SetWindowSize(int width, int height);
  // Find waits up to `wait` for an element matching the CSS selector; returns its id.
  absl::StatusOr<std::string> Find(const std::string& css, absl::Duration wait = absl::Seconds(10));
  // FindWithText: the first element matching `css` whose text contains `text`, waiting for it.
  absl::StatusOr<std::string> FindWithText(const std::string& css, const std::string& text,
                                           absl::Duration wait = absl::Seconds(10));
  absl::Status Click(const std::string& element);
  absl::Status Type(const std::string& element, const std::string& text);
  absl::StatusOr<std::string> Text(const std::string& element);
  // PageText: the whole page's visible text.
  absl::StatusOr<std::string> PageText();
  // WaitForText waits until the page's text contains `text`.
  absl::Status WaitForText(const std::string& text, absl::Duration wait = absl::Seconds(15));
  // Script runs JavaScript (its `return` value comes back); ScriptAsync passes a callback as the
  // last argument, which the script calls with its result.
  absl::StatusOr<google::protobuf::Value> Script(const std::string& js);
  absl::StatusOr<google::protobuf::Value> ScriptAsync(const std::string& js, absl::Duration timeout);
  // Screenshot writes a PNG of the viewport to `path`.
  absl::Status Screenshot(const std::string& path);

 private:
  WebDriver(std::unique_ptr<ChildProcess> driver, int port) : driver_(std::move(driver)), port_(port) {}
  // Send makes one WebDriver call; returns the answer's "value".
  absl::StatusOr<google::protobuf::Value> Send(const std::string& method, const std::string& path,
                                               const google::protobuf::Struct& body);
  absl::StatusOr<google::protobuf::Value> Session(const std::string& method, const std::string& path,
                                                  const google::protobuf::Struct& body = {});

  std::unique_ptr<ChildProcess> driver_;
  const int port_;
  std::string session_;
};

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_WEB_WEBDRIVER_H_
