#include "tests/web/webdriver.h"

#include <arpa/inet.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace converge::testing {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr char kChromium[] = "/usr/bin/chromium";
constexpr char kDriver[] = "/usr/bin/chromedriver";
constexpr char kElementKey[] = "element-6066-11e4-a52e-4f735466cecf";

// A port free now (the kernel's pick), for chromedriver's --port.
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

Value Str(const std::string& s) {
  Value v;
  v.set_string_value(s);
  return v;
}

Struct Obj(std::initializer_list<std::pair<const char*, Value>> fields) {
  Struct s;
  for (const auto& [k, v] : fields) (*s.mutable_fields())[k] = v;
  return s;
}

Value ObjValue(const Struct& s) {
  Value v;
  *v.mutable_struct_value() = s;
  return v;
}

Value List(const std::vector<std::string>& items) {
  Value v;
  for (const std::string& i : items) *v.mutable_list_value()->add_values() = Str(i);
  return v;
}

std::string ElementOf(const Value& v) {
  if (v.kind_case() != Value::kStructValue) return "";
  auto it = v.struct_value().fields().find(kElementKey);
  return it == v.struct_value().fields().end() ? "" : it->second.string_value();
}

}  // namespace

bool WebDriver::Available() { return std::filesystem::exists(kChromium) && std::filesystem::exists(kDriver); }

absl::StatusOr<std::unique_ptr<WebDriver>> WebDriver::Start(const std::string& dir) {
  const int port = FreePort();
  absl::StatusOr<std::unique_ptr<ChildProcess>> driver =
      ChildProcess::Start({kDriver, absl::StrCat("--port=", port), "--allowed-ips=127.0.0.1"}, dir + "/chromedriver.log");
  if (!driver.ok()) return driver.status();
  std::unique_ptr<WebDriver> out(new WebDriver(std::move(*driver), port));
  Value args = List({"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,800", "--no-first-run", "--password-store=basic",
                     absl::StrCat("--user-data-dir=", dir, "/chromium-profile")});
  Struct chrome = Obj({{"binary", Str(kChromium)}, {"args", args}});
  Value accept;
  accept.set_bool_value(true);
  Struct caps = Obj({{"browserName", Str("chrome")}, {"acceptInsecureCerts", accept},
                     {"goog:chromeOptions", ObjValue(chrome)}});
  Struct body = Obj({{"capabilities", ObjValue(Obj({{"alwaysMatch", ObjValue(caps)}}))}});
  absl::StatusOr<Value> session = absl::UnavailableError("chromedriver did not answer");
  for (int i = 0; i < 100; ++i) {  // chromedriver takes a moment to listen
    session = out->Send("POST", "/session", body);
    if (session.ok() || !absl::IsUnavailable(session.status())) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  if (!session.ok()) return session.status();
  out->session_ = session->struct_value().fields().at("sessionId").string_value();
  return out;
}

WebDriver::~WebDriver() {
  if (!session_.empty()) Send("DELETE", absl::StrCat("/session/", session_), Struct()).IgnoreError();
}

absl::StatusOr<Value> WebDriver::Send(const std::string& method, const std::string& path, const Struct& body) {
  httplib::Client client("127.0.0.1", port_);
  client.set_read_timeout(120, 0);
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(body, &json).ok()) return absl::InternalError("json");
  httplib::Result res = method == "GET"      ? client.Get(path)
                        : method == "DELETE" ? client.Delete(path)
                                             : client.Post(path, json, "application/json");
  if (!res) return absl::UnavailableError(absl::StrCat(method, " ", path, ": ", httplib::to_string(res.error())));
  Struct answer;
  if (!google::protobuf::util::JsonStringToMessage(res->body, &answer).ok()) {
    return absl::InternalError(absl::StrCat("not JSON from chromedriver: ", res->body.substr(0, 200)));
  }
  const Value& value = answer.fields().at("value");
  if (res->status != 200) {
    std::string error = value.struct_value().fields().count("message")
                            ? value.struct_value().fields().at("message").string_value()
                            : res->body.substr(0, 300);
    const bool missing = absl::StrContains(res->body, "no such element");
    return missing ? absl::NotFoundError(error) : absl::InternalError(absl::StrCat(method, " ", path, ": ", error));
  }
  return value;
}

absl::StatusOr<Value> WebDriver::Session(const std::string& method, const std::string& path, const Struct& body) {
  return Send(method, absl::StrCat("/session/", session_, path), body);
}

absl::Status WebDriver::Navigate(const std::string& url) {
  return Session("POST", "/url", Obj({{"url", Str(url)}})).status();
}

absl::Status WebDriver::SetWindowSize(int width, int height) {
  Value w, h;
  w.set_number_value(width);
  h.set_number_value(height);
  return Session("POST", "/window/rect", Obj({{"width", w}, {"height", h}})).status();
}

absl::StatusOr<std::string> WebDriver::Find(const std::string& css, absl::Duration wait) {
  const absl::Time until = absl::Now() + wait;
  while (true) {
    absl::StatusOr<Value> v = Session("POST", "/element", Obj({{"using", Str("css selector")}, {"value", Str(css)}}));
    if (v.ok()) return ElementOf(*v);
    if (!absl::IsNotFound(v.status()) || absl::Now() > until) {
      return absl::NotFoundError(absl::StrCat("no element '", css, "': ", v.status().message()));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
}

absl::StatusOr<std::string> WebDriver::FindWithText(const std::string& css, const std::string& text,
                                                    absl::Duration wait) {
  const absl::Time until = absl::Now() + wait;
  while (true) {
    absl::StatusOr<Value> found =
        Session("POST", "/elements", Obj({{"using", Str("css selector")}, {"value", Str(css)}}));
    if (found.ok()) {
      for (const Value& e : found->list_value().values()) {
        absl::StatusOr<std::string> t = Text(ElementOf(e));
        if (t.ok() && absl::StrContains(*t, text)) return ElementOf(e);
      }
    }
    if (absl::Now() > until) return absl::NotFoundError(absl::StrCat("no '", css, "' with text '", text, "'"));
    absl::SleepFor(absl::Milliseconds(100));
  }
}

absl::Status WebDriver::Click(const std::string& element) {
  return Session("POST", absl::StrCat("/element/", element, "/click")).status();
}

absl::Status WebDriver::Type(const std::string& element, const std::string& text) {
  return Session("POST", absl::StrCat("/element/", element, "/value"), Obj({{"text", Str(text)}})).status();
}

absl::StatusOr<std::string> WebDriver::Text(const std::string& element) {
  absl::StatusOr<Value> v = Session("GET", absl::StrCat("/element/", element, "/text"));
  if (!v.ok()) return v.status();
  return v->string_value();
}

absl::StatusOr<std::string> WebDriver::PageText() {
  absl::StatusOr<Value> v = Script("return document.body.innerText;");
  if (!v.ok()) return v.status();
  return v->string_value();
}

absl::Status WebDriver::WaitForText(const std::string& text, absl::Duration wait) {
  const absl::Time until = absl::Now() + wait;
  std::string last;
  while (absl::Now() < until) {
    absl::StatusOr<std::string> page = PageText();
    if (page.ok() && absl::StrContains(*page, text)) return absl::OkStatus();
    if (page.ok()) last = *page;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat("the page never said '", text, "'; it says: ", last.substr(0, 800)));
}

absl::StatusOr<Value> WebDriver::Script(const std::string& js) {
  Value args;
  args.mutable_list_value();
  return Session("POST", "/execute/sync", Obj({{"script", Str(js)}, {"args", args}}));
}

absl::StatusOr<Value> WebDriver::ScriptAsync(const std::string& js, absl::Duration timeout) {
  Value ms;
  ms.set_number_value(absl::ToDoubleMilliseconds(timeout));
  if (absl::Status s = Session("POST", "/timeouts", Obj({{"script", ms}})).status(); !s.ok()) return s;
  Value args;
  args.mutable_list_value();
  return Session("POST", "/execute/async", Obj({{"script", Str(js)}, {"args", args}}));
}

absl::Status WebDriver::Screenshot(const std::string& path) {
  absl::StatusOr<Value> v = Session("GET", "/screenshot");
  if (!v.ok()) return v.status();
  std::string png;
  if (!absl::Base64Unescape(v->string_value(), &png)) return absl::InternalError("screenshot is not base64");
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << png;
  return absl::OkStatus();
}

}  // namespace converge::testing
