// Replays a fuzz target's kept corpus (every file under the directories given) and then a
// bounded number of seeded mutations of it (bit flips, truncations, splices, random bytes), so
// CI exercises each target without clang's libFuzzer. `tools/fuzz/run TARGET` fuzzes for real
// (clang, -fsanitize=fuzzer,address,undefined) and grows the corpus. A failing input aborts,
// after this driver printed which one (and the seed for mutations).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void Run(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> corpus;
  for (int i = 1; i < argc; ++i) {
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(argv[i], ec)) {
      if (!e.is_regular_file()) continue;
      std::ifstream in(e.path(), std::ios::binary);
      corpus.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      fprintf(stderr, "input %s\n", e.path().c_str());
      Run(corpus.back());
    }
  }
  const char* env = getenv("CONVERGE_FUZZ_SEED");
  const uint64_t seed = env != nullptr ? strtoull(env, nullptr, 10) : 20261127;
  const int rounds = getenv("CONVERGE_FUZZ_ROUNDS") != nullptr ? atoi(getenv("CONVERGE_FUZZ_ROUNDS")) : 3000;
  fprintf(stderr, "mutations: seed %llu (replay with CONVERGE_FUZZ_SEED=%llu)\n", static_cast<unsigned long long>(seed),
          static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  for (int r = 0; r < rounds; ++r) {
    std::string input;
    if (corpus.empty() || rng() % 4 == 0) {
      input.resize(rng() % 4096);
      for (char& c : input) c = static_cast<char>(rng());
    } else {
      input = corpus[rng() % corpus.size()];
      const int edits = 1 + static_cast<int>(rng() % 8);
      for (int k = 0; k < edits && !input.empty(); ++k) {
        switch (rng() % 4) {
          case 0: input[rng() % input.size()] ^= static_cast<char>(1u << (rng() % 8)); break;
          case 1: input.resize(rng() % input.size()); break;
          case 2: input.insert(rng() % (input.size() + 1), corpus[rng() % corpus.size()].substr(0, rng() % 64)); break;
          default: input[rng() % input.size()] = static_cast<char>(rng()); break;
        }
      }
    }
    Run(input);
  }
  printf("%zu corpus inputs and %d seeded mutations passed\n", corpus.size(), rounds);
  return 0;
}
