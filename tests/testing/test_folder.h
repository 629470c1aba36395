// Test helpers: a fresh real folder under TEST_TMPDIR, and small file operations on it.
#ifndef CONVERGE_TESTS_TESTING_TEST_FOLDER_H_
#define CONVERGE_TESTS_TESTING_TEST_FOLDER_H_

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace converge::engine::testing {

// MakeTestDir returns an empty directory named after the running test plus `suffix`.
inline std::string MakeTestDir(const std::string& suffix = "") {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/" + info->test_suite_name() + "." +
                          info->name() + suffix;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void WriteFile(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace converge::engine::testing

#endif  // CONVERGE_TESTS_TESTING_TEST_FOLDER_H_
